//! sysctl.d files: rendering sysctune's drop-in (deterministic bytes) and parsing what
//! real files contain (`#` and `;` comments, `key=value` and `key = value`, tabs, slashed
//! keys, the `-` prefix that tells systemd-sysctl to ignore a failure).

use crate::keys;

/// One assignment in a sysctl.d file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Canonical dotted key (or the raw key when it is a glob or otherwise not a plain
    /// key; `valid_key` says which).
    pub key: String,
    pub value: String,
    /// 1-based line number.
    pub line: usize,
    /// `-key = value`: failures to write are ignored.
    pub ignore_failure: bool,
    /// The key contains a glob (`net.ipv4.conf.*.rp_filter`).
    pub glob: bool,
    /// Comment lines directly above, without their `#`/`;`.
    pub comments: Vec<String>,
}

/// A line that is neither blank, a comment nor an assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub text: String,
    pub message: String,
}

/// `-key` on a line of its own (no `=`): a "negative match". systemd-sysctl leaves the
/// key out of every glob and drops an earlier assignment of it; procps only leaves it out
/// of globs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exclusion {
    /// Canonical dotted key.
    pub key: String,
    /// 1-based line number.
    pub line: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub bad: Vec<BadLine>,
    /// Negative matches; only [`parse_sysctl_d`] fills this (for [`parse`] they are bad lines).
    pub excluded: Vec<Exclusion>,
}

/// Parse sysctl.d text as systemd-sysctl does: outer whitespace trimmed, `#` or `;`
/// starts a comment line, the first `=` separates key and value, a slash-first key has
/// dots and slashes swapped. A line without `=` is a bad line.
pub fn parse(text: &str) -> Parsed {
    parse_with(text, false)
}

/// [`parse`], and `-key` lines without `=` are negative matches ([`Parsed::excluded`]), as
/// in the files of the sysctl.d directories. A negative match of a glob does nothing (both
/// tools check exclusions against concrete keys) and is dropped.
pub fn parse_sysctl_d(text: &str) -> Parsed {
    parse_with(text, true)
}

fn parse_with(text: &str, negative_matches: bool) -> Parsed {
    let mut out = Parsed::default();
    let mut comments: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            comments.clear();
            continue;
        }
        if let Some(c) = line.strip_prefix('#').or_else(|| line.strip_prefix(';')) {
            comments.push(c.trim().to_string());
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            if negative_matches && let Some(rest) = line.strip_prefix('-') {
                let key = rest.trim();
                comments.clear();
                if key.contains(['*', '?', '[']) {
                    continue;
                }
                match keys::normalize_key(key) {
                    Ok(key) => out.excluded.push(Exclusion { key, line: line_no }),
                    Err(e) => out.bad.push(BadLine {
                        line: line_no,
                        text: raw.to_string(),
                        message: e,
                    }),
                }
                continue;
            }
            out.bad.push(BadLine {
                line: line_no,
                text: raw.to_string(),
                message: "not an assignment (expected key = value)".into(),
            });
            comments.clear();
            continue;
        };
        let mut key = k.trim();
        let ignore_failure = key.starts_with('-');
        if ignore_failure {
            key = key[1..].trim_start();
        }
        let glob = key.contains(['*', '?', '[']);
        let canonical = if glob {
            Ok(key.to_string())
        } else {
            keys::normalize_key(key)
        };
        match canonical {
            Ok(key) => out.entries.push(Entry {
                key,
                value: v.split_whitespace().collect::<Vec<_>>().join(" "),
                line: line_no,
                ignore_failure,
                glob,
                comments: std::mem::take(&mut comments),
            }),
            Err(e) => {
                out.bad.push(BadLine {
                    line: line_no,
                    text: raw.to_string(),
                    message: e,
                });
                comments.clear();
            }
        }
    }
    out
}

/// How sysctune's header comment starts (it is not a key's comment).
pub const HEADER_START: &str = "Managed by sysctune";

/// One key of sysctune's drop-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub key: String,
    pub value: String,
    /// One-line comment above the assignment (`tcp-memory: high ... exceeds ...`).
    pub comment: String,
}

/// The drop-in's first line, naming the profile.
pub fn header_line(profile: &str) -> String {
    format!("# Managed by sysctune, profile \"{profile}\". Re-run `sysctune apply` to change it.")
}

/// The drop-in's text: a header naming the profile, then per key a comment and
/// `key = value`, in the order given. No timestamps: the same plan gives the same bytes.
pub fn render(profile: &str, lines: &[Line]) -> String {
    let mut out = header_line(profile);
    out.push('\n');
    for line in lines {
        for c in line.comment.lines() {
            out.push_str("# ");
            out.push_str(c.trim());
            out.push('\n');
        }
        out.push_str(&format!("{} = {}\n", line.key, line.value));
    }
    out
}

/// A unified diff from `old` to `new` with `a/` and `b/` paths, empty when equal.
pub fn diff(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let rel = path.trim_start_matches('/');
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{rel}"), &format!("b/{rel}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_files() {
        let text = "# comment\n; another\nnet.ipv4.tcp_rmem=4096\t87380\t6291456\n  vm.swappiness = 10  \n-net/ipv4/tcp_tw_reuse = 1\n\nnet.ipv4.conf.*.rp_filter = 2\nnot a line\nkernel.panic =\n";
        let p = parse(text);
        let keys: Vec<_> = p
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
            .collect();
        assert_eq!(
            keys,
            [
                ("net.ipv4.tcp_rmem", "4096 87380 6291456", 3),
                ("vm.swappiness", "10", 4),
                ("net.ipv4.tcp_tw_reuse", "1", 5),
                ("net.ipv4.conf.*.rp_filter", "2", 7),
                ("kernel.panic", "", 9),
            ]
        );
        assert_eq!(p.entries[0].comments, ["comment", "another"]);
        assert!(p.entries[2].ignore_failure);
        assert!(p.entries[3].glob);
        assert_eq!(p.bad.len(), 1);
        assert_eq!(p.bad[0].line, 8);
    }

    #[test]
    fn negative_matches_only_in_sysctl_d_mode() {
        let text =
            "-net.ipv4.conf.all.rp_filter\n- net/ipv4/tcp_tw_reuse \n-net.ipv4.conf.*.rp_filter\n-net..x\n";
        let p = parse(text);
        assert_eq!(p.bad.len(), 4);
        assert!(p.excluded.is_empty());
        let p = parse_sysctl_d(text);
        assert_eq!(
            p.excluded,
            [
                Exclusion {
                    key: "net.ipv4.conf.all.rp_filter".into(),
                    line: 1
                },
                Exclusion {
                    key: "net.ipv4.tcp_tw_reuse".into(),
                    line: 2
                },
            ]
        );
        assert_eq!(p.bad.len(), 1);
        assert_eq!(p.bad[0].line, 4);
        assert!(p.entries.is_empty());
    }

    #[test]
    fn render_is_deterministic_and_round_trips() {
        let lines = vec![Line {
            key: "net.ipv4.tcp_mem".into(),
            value: "6094848 8126464 12189696".into(),
            comment: "tcp-memory: high 47.1 GiB exceeds the TCP budget 46.5 GiB (75% of 62 GiB)".into(),
        }];
        let text = render("reverse-proxy", &lines);
        assert_eq!(
            text,
            "# Managed by sysctune, profile \"reverse-proxy\". Re-run `sysctune apply` to change it.\n# tcp-memory: high 47.1 GiB exceeds the TCP budget 46.5 GiB (75% of 62 GiB)\nnet.ipv4.tcp_mem = 6094848 8126464 12189696\n"
        );
        assert_eq!(render("reverse-proxy", &lines), text);
        let parsed = parse(&text);
        assert_eq!(parsed.entries.len(), 1);
        assert_eq!(parsed.entries[0].value, "6094848 8126464 12189696");
        assert!(diff("/etc/sysctl.d/x.conf", &text, &text).is_empty());
        let d = diff("/etc/sysctl.d/x.conf", "", &text);
        assert!(
            d.starts_with("--- a/etc/sysctl.d/x.conf\n+++ b/etc/sysctl.d/x.conf\n"),
            "{d}"
        );
    }
}
