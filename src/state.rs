//! What sysctune has applied on a host, kept in the state directory as `applied.conf`:
//! the invocation of the last apply that changed something (profile as given, `--set`,
//! `--only`, drop-in, time, network namespace), and every key sysctune has written live
//! with the value it had before sysctune first wrote it.
//!
//! `status` reads it to say what was applied and whether live, boot and the drop-in still
//! agree; `plan` reads it so that a key which leaves management (another profile, a
//! narrower `--only`) is shown and returned by apply to the value it will have at boot,
//! instead of keeping a live value the next reboot silently undoes.
//!
//! The file is a valid sysctl.d file of the original values, with the rest in header
//! comments; read back it is untrusted input (under `--root IMAGE` it is the image's),
//! checked like a rollback record.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::keys;

pub const FILE: &str = "applied.conf";

/// The last apply that changed something, and what sysctune has set live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The profile's name, and the profile as given (`batch-client`, `./p.toml`).
    pub profile: String,
    pub spec: String,
    pub sets: Vec<String>,
    pub only: Vec<String>,
    pub dropin: String,
    /// `2026-12-01T21:45:00Z`.
    pub time: String,
    /// `net:[4026531840]` when applied to this machine's `/`, else empty.
    pub netns: String,
    /// Every key sysctune has written live → its value before sysctune first wrote it.
    pub set: BTreeMap<String, String>,
}

impl Applied {
    pub fn render(&self) -> String {
        let mut s = String::from(
            "# sysctune: what the last apply that changed something did, and the value each key had before\n\
             # sysctune first wrote it. Read by `sysctune status` and by plans.\n",
        );
        let mut line = |k: &str, v: &str| s.push_str(&format!("# {k}: {v}\n"));
        line("profile", &self.profile);
        line("spec", &self.spec);
        for set in &self.sets {
            line("set", set);
        }
        for only in &self.only {
            line("only", only);
        }
        line("dropin", &self.dropin);
        line("time", &self.time);
        if !self.netns.is_empty() {
            line("netns", &self.netns);
        }
        for (k, v) in &self.set {
            s.push_str(&format!("{k} = {v}\n"));
        }
        s
    }

    /// Parse and check; errors name the file and line.
    pub fn parse(text: &str, origin: &Path) -> Result<Applied> {
        let at = |line: usize, what: String| Error::host(origin, format!("line {line}: {what}"));
        let mut a = Applied::default();
        let mut saw_profile = false;
        for (i, l) in text.lines().enumerate() {
            let n = i + 1;
            let Some(rest) = l.strip_prefix("# ") else {
                continue;
            };
            let Some((k, v)) = rest.split_once(": ") else {
                continue;
            };
            if v.chars().any(char::is_control) {
                return Err(at(n, format!("{k}: {v:?} holds control characters")));
            }
            let v = v.to_string();
            match k {
                "profile" => {
                    a.profile = v;
                    saw_profile = true;
                }
                "spec" => a.spec = v,
                "set" => a.sets.push(v),
                "only" => a.only.push(v),
                "dropin" => {
                    if !v.starts_with('/') || v.split('/').any(|c| c == "..") {
                        return Err(at(
                            n,
                            format!("the drop-in {v:?} is not an absolute path inside the root"),
                        ));
                    }
                    a.dropin = v;
                }
                "time" => a.time = v,
                "netns" => a.netns = v,
                _ => {}
            }
        }
        if !saw_profile {
            return Err(Error::host(
                origin,
                "not a sysctune applied state: no '# profile:' line",
            ));
        }
        let parsed = crate::dropin::parse(text);
        if let Some(b) = parsed.bad.first() {
            return Err(at(b.line, b.message.clone()));
        }
        for e in parsed.entries {
            let key = keys::normalize_key(&e.key).map_err(|m| at(e.line, m))?;
            let value = keys::normalize_value(&e.value).map_err(|m| at(e.line, m))?;
            keys::check_shape(&key, &value).map_err(|m| at(e.line, format!("{key}: {m}")))?;
            if keys::danger(&key, &value).is_some() {
                return Err(at(
                    e.line,
                    format!("{key:?} = {value:?} is a dangerous key; sysctune never restores it"),
                ));
            }
            a.set.insert(key, value);
        }
        Ok(a)
    }
}

/// Now, as `2026-12-01T21:45:00Z` (UTC, to the second).
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

/// Seconds since the epoch as an RFC 3339 UTC time (days to civil date: H. Hinnant's
/// algorithm).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The inverse of [`utc`]: `2026-12-01T21:45:00Z` → seconds since the epoch; `None` for
/// anything else (an `applied.conf` edited by hand, a time before 1970).
pub fn parse_utc(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = &s[from..to];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    // civil date to days (H. Hinnant's days_from_civil)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    let secs = u64::try_from(secs).ok()?;
    // 31 February is not a date: it must print back the same
    (utc(secs) == s).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_utc("2026-12-01T21:45:00Z"), Some(1_796_161_500));
        for bad in [
            "2026-02-31T00:00:00Z",
            "2026-12-01 21:45:00Z",
            "1969-12-31T23:59:59Z",
            "",
            "2026-12-01T21:45:00+01",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_161_500), "2026-12-01T21:45:00Z");
    }

    #[test]
    fn round_trips() {
        let a = Applied {
            profile: "batch-client".into(),
            spec: "./p.toml".into(),
            sets: vec!["connections.concurrent=10".into()],
            only: vec!["net.ipv4.*".into()],
            dropin: "/etc/sysctl.d/90-sysctune.conf".into(),
            time: "2026-12-01T21:45:00Z".into(),
            netns: "net:[4026531840]".into(),
            set: [("net.ipv4.tcp_rmem".to_string(), "4096 87380 6291456".to_string())].into(),
        };
        let text = a.render();
        assert!(crate::dropin::parse(&text).bad.is_empty());
        assert_eq!(Applied::parse(&text, Path::new("x")).unwrap(), a);
        let bad = text
            .replace("4096 87380 6291456", "|/bin/sh")
            .replace("net.ipv4.tcp_rmem", "kernel.core_pattern");
        assert!(
            Applied::parse(&bad, Path::new("x"))
                .unwrap_err()
                .to_string()
                .contains("dangerous")
        );
    }
}
