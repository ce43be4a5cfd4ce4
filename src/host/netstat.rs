//! `/proc/net/netstat` and `/proc/net/snmp`: the kernel's counters, as pairs of lines per
//! prefix, a header of names then a line of values:
//! ```text
//! TcpExt: SyncookiesSent SyncookiesRecv ... ListenOverflows ListenDrops ...
//! TcpExt: 0 0 ... 12 12 ...
//! ```
//! Values are decimal; a few in `snmp` are signed (`Tcp: ... MaxConn` is -1), so they are
//! read as `i64`. Counters count since boot (per network namespace for TCP).

use std::collections::BTreeMap;

/// Prefix (`TcpExt`) → counter name → value.
pub type Counters = BTreeMap<String, BTreeMap<String, i64>>;

/// Parse one file; errors name the 1-based line and what would be valid.
pub fn parse(text: &str) -> Result<Counters, String> {
    let mut out = Counters::new();
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    while let Some((i, header)) = lines.next() {
        let n = i + 1;
        let (prefix, names) = split(header).ok_or_else(|| {
            format!(
                "line {n}: expected \"Prefix: Name Name ...\", found {}",
                show(header)
            )
        })?;
        let Some((j, values)) = lines.next() else {
            return Err(format!(
                "line {n}: the names of {prefix:?} have no line of values after them"
            ));
        };
        let m = j + 1;
        let (prefix2, values) = split(values).ok_or_else(|| {
            format!(
                "line {m}: expected \"{prefix}: VALUE VALUE ...\", found {}",
                show(values)
            )
        })?;
        if prefix2 != prefix {
            return Err(format!(
                "line {m}: expected the values of {prefix:?} (line {n}), found the prefix {prefix2:?}"
            ));
        }
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        if names.len() != values.len() {
            return Err(format!(
                "line {m}: {} values for the {} names of {prefix:?} on line {n}",
                values.len(),
                names.len()
            ));
        }
        let section = out.entry(prefix.to_string()).or_default();
        for (name, value) in names.iter().zip(&values) {
            let v: i64 = value
                .parse()
                .map_err(|_| format!("line {m}: {prefix} {name}: {} is not a whole number", show(value)))?;
            section.insert(name.to_string(), v);
        }
    }
    Ok(out)
}

fn split(line: &str) -> Option<(&str, &str)> {
    let (prefix, rest) = line.split_once(':')?;
    let prefix = prefix.trim();
    (!prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_alphanumeric())).then_some((prefix, rest))
}

/// A piece of input for a message: escaped, at most 60 characters.
fn show(s: &str) -> String {
    let cut: String = s.chars().take(60).collect();
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_of_lines() {
        let c = parse(
            "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 12 13\n\
             IpExt: InNoRoutes\nIpExt: 4\n",
        )
        .unwrap();
        assert_eq!(c["TcpExt"]["ListenOverflows"], 12);
        assert_eq!(c["TcpExt"]["ListenDrops"], 13);
        assert_eq!(c["IpExt"]["InNoRoutes"], 4);
        // snmp's signed value
        let s = parse("Tcp: RtoAlgorithm MaxConn\nTcp: 1 -1\n").unwrap();
        assert_eq!(s["Tcp"]["MaxConn"], -1);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn garbled_input_names_the_line() {
        for (text, why) in [
            (
                "TcpExt: A B\n",
                "line 1: the names of \"TcpExt\" have no line of values",
            ),
            ("TcpExt: A B\nTcpExt: 1\n", "line 2: 1 values for the 2 names"),
            (
                "TcpExt: A B\nIpExt: 1 2\n",
                "line 2: expected the values of \"TcpExt\"",
            ),
            (
                "TcpExt: A B\nTcpExt: 1 x\n",
                "line 2: TcpExt B: \"x\" is not a whole number",
            ),
            ("garbage\n", "line 1: expected \"Prefix: Name"),
            ("Tcp: A\nTcp: 1\n\u{1b}[31m: A\n", "line 3: expected"),
            ("TcpExt: A\nTcpExt: 99999999999999999999\n", "not a whole number"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
            assert!(!e.contains('\u{1b}'), "{e}");
        }
    }
}
