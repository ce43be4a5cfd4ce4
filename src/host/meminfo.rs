//! `/proc/meminfo`: the figures the rules need, in bytes.
//!
//! A small parser of our own rather than procfs's: it needs only these fields (procfs
//! requires twenty others a fixture or a container may lack), reports the line of a
//! garbled entry, and never panics on odd bytes.

use super::MemInfo;

/// Parse meminfo text. Values with `kB` are KiB (the kernel's "kB" means 1024 bytes).
///
/// `hugetlb` is the `Hugetlb:` line (every huge page size, since 4.16); where that line is
/// missing, `HugePages_Total × Hugepagesize` (the default size, all that older kernels
/// print: `hugetlb_report_meminfo` in mm/hugetlb.c), else 0.
pub fn parse(text: &str) -> Result<MemInfo, String> {
    let mut total = None;
    let mut swap = None;
    let mut hugetlb = None;
    let mut huge_pages = None;
    let mut huge_page_size = None;
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
            // a count: no unit
            "HugePages_Total" => &mut huge_pages,
            "Hugepagesize" => &mut huge_page_size,
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
    let hugetlb = match (hugetlb, huge_pages, huge_page_size) {
        (Some(bytes), _, _) => bytes,
        (None, Some(0), _) | (None, None, _) => 0,
        (None, Some(n), Some(size)) => n
            .checked_mul(size)
            .ok_or_else(|| format!("HugePages_Total {n} × Hugepagesize {size} B is too large"))?,
        (None, Some(n), None) => {
            return Err(format!(
                "HugePages_Total is {n} but there is no Hugepagesize line: the huge pages' size is unknown"
            ));
        }
    };
    Ok(MemInfo {
        mem_total: need(total, "MemTotal")?,
        swap_total: need(swap, "SwapTotal")?,
        hugetlb,
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

    /// Before 4.16 there is no `Hugetlb:` line: the huge pages are counted from
    /// HugePages_Total × Hugepagesize. A 3.10 host with 8 GiB of 2 MiB pages.
    #[test]
    fn hugetlb_before_4_16() {
        let old = "MemTotal: 16265236 kB\nSwapTotal: 0 kB\nHugePages_Total:    4096\nHugePages_Free:     4096\nHugepagesize:       2048 kB\nCommitLimit: 3938312 kB\nCommitted_AS: 3306488 kB\n";
        let m = parse(old).unwrap();
        assert_eq!(m.hugetlb, 8 << 30);
        // since 4.16 the Hugetlb line wins: it counts every huge page size
        let new = format!("{old}Hugetlb: 9437184 kB\n");
        assert_eq!(parse(&new).unwrap().hugetlb, 9 << 30);
        // no huge pages, or no huge page lines at all
        let none = old.replace("4096\nHugePages_Free:     4096", "0\nHugePages_Free: 0");
        assert_eq!(parse(&none).unwrap().hugetlb, 0);
        let bare = "MemTotal: 1 kB\nSwapTotal: 0 kB\nCommitLimit: 0 kB\nCommitted_AS: 0 kB\n";
        assert_eq!(parse(bare).unwrap().hugetlb, 0);
        // a count without a size is garbled, not 0
        let e = parse(&old.replace("Hugepagesize:       2048 kB\n", "")).unwrap_err();
        assert!(e.contains("no Hugepagesize"), "{e}");
        let e = parse(&old.replace("4096\nHugePages_Free", "x\nHugePages_Free")).unwrap_err();
        assert!(e.contains("line 3") && e.contains("HugePages_Total"), "{e}");
        let e = parse(&old.replace(" 4096\nHugePages_Free", " 18446744073709551615\nHugePages_Free"))
            .unwrap_err();
        assert!(e.contains("too large"), "{e}");
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
