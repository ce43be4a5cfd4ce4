//! `/proc/meminfo`: the figures the rules need, in bytes.
//!
//! A small parser of our own rather than procfs's: it needs only these fields (procfs
//! requires twenty others a fixture or a container may lack), reports the line of a
//! garbled entry, and never panics on odd bytes.

use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MemInfo {
    pub mem_total: u64,
    pub swap_total: u64,
    pub hugetlb: u64,
    pub commit_limit: u64,
    pub committed_as: u64,
    pub mem_available: Option<u64>,
}

/// Parse meminfo text. Values with `kB` are KiB (the kernel's "kB" means 1024 bytes).
pub fn parse(text: &str) -> Result<MemInfo, String> {
    let mut total = None;
    let mut swap = None;
    let mut hugetlb = None;
    let mut commit_limit = None;
    let mut committed = None;
    let mut available = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, rest)) = line.split_once(':') else {
            return Err(format!(
                "line {line_no}: expected \"Name: value kB\", found {line:?}"
            ));
        };
        let slot = match name.trim() {
            "MemTotal" => &mut total,
            "SwapTotal" => &mut swap,
            "Hugetlb" => &mut hugetlb,
            "CommitLimit" => &mut commit_limit,
            "Committed_AS" => &mut committed,
            "MemAvailable" => &mut available,
            _ => continue,
        };
        let mut parts = rest.split_whitespace();
        let number = parts.next().unwrap_or("");
        let unit = parts.next();
        let value: u64 = number.parse().map_err(|_| {
            format!(
                "line {line_no}: {}: {number:?} is not a whole number",
                name.trim()
            )
        })?;
        let bytes = match unit {
            None => value,
            Some("kB") => value
                .checked_mul(1024)
                .ok_or_else(|| format!("line {line_no}: {}: {value} kB is too large", name.trim()))?,
            Some(other) => {
                return Err(format!(
                    "line {line_no}: {}: unknown unit {other:?}, expected kB",
                    name.trim()
                ));
            }
        };
        // Every figure is a share of the RAM: 0 would make them all nonsense.
        if bytes == 0 && name.trim() == "MemTotal" {
            return Err(format!(
                "line {line_no}: MemTotal is {}: a running kernel reports the RAM it manages there, more than 0 kB",
                rest.trim()
            ));
        }
        *slot = Some(bytes);
    }
    let need = |v: Option<u64>, name: &str| v.ok_or_else(|| format!("no {name} line"));
    Ok(MemInfo {
        mem_total: need(total, "MemTotal")?,
        swap_total: need(swap, "SwapTotal")?,
        hugetlb: hugetlb.unwrap_or(0),
        commit_limit: need(commit_limit, "CommitLimit")?,
        committed_as: need(committed, "Committed_AS")?,
        mem_available: available,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_article_figures() {
        let m = parse("MemTotal:       16314480 kB\nMemFree: 1 kB\nSwapTotal: 0 kB\nCommitLimit:    517584 kB\nCommitted_AS:  3306488 kB\n").unwrap();
        assert_eq!(m.commit_limit, 517584 * 1024);
        assert_eq!(m.committed_as, 3306488 * 1024);
        assert_eq!(m.hugetlb, 0);
        assert_eq!(m.mem_available, None);
    }

    #[test]
    fn garbled() {
        assert!(parse("MemTotal: lots kB\n").unwrap_err().contains("line 1"));
        assert!(parse("MemTotal 5 kB\n").unwrap_err().contains("line 1"));
        assert!(parse("MemTotal: 5 MB\n").unwrap_err().contains("unknown unit"));
        assert!(parse("MemTotal: 5 kB\n").unwrap_err().contains("no SwapTotal"));
        assert!(parse("é: 5\nMemTotal: 1\n").is_err());
        assert!(
            parse("MemTotal: 0 kB\n")
                .unwrap_err()
                .starts_with("line 1: MemTotal is 0 kB:")
        );
    }
}
