//! `/proc/net/sockstat`: `TCP: inuse I orphan O tw T alloc A mem M` (procfs has no parser).
//! `mem` is in pages, like tcp_mem.

use super::Sockstat;

pub fn parse(text: &str) -> Result<Sockstat, String> {
    let mut out = Sockstat::default();
    let mut saw_tcp = false;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let Some((proto, rest)) = line.split_once(':') else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!(
                "line {line_no}: expected \"PROTO: name value ...\", found {line:?}"
            ));
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        if !words.len().is_multiple_of(2) {
            return Err(format!(
                "line {line_no}: expected name/value pairs, found {line:?}"
            ));
        }
        let mut fields = Vec::new();
        for pair in words.chunks(2) {
            let value: u64 = pair[1].parse().map_err(|_| {
                format!(
                    "line {line_no}: {proto} {}: {:?} is not a whole number",
                    pair[0], pair[1]
                )
            })?;
            fields.push((pair[0], value));
        }
        let get = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        match proto.trim() {
            "sockets" => out.sockets_used = get("used").unwrap_or(0),
            "TCP" => {
                saw_tcp = true;
                let need = |name: &str| {
                    get(name).ok_or_else(|| format!("line {line_no}: TCP has no {name:?} field"))
                };
                out.tcp_inuse = need("inuse")?;
                out.tcp_orphan = need("orphan")?;
                out.tcp_tw = need("tw")?;
                out.tcp_alloc = need("alloc")?;
                out.tcp_mem = need("mem")?;
            }
            _ => {}
        }
    }
    if !saw_tcp {
        return Err("no \"TCP:\" line".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let s = parse("sockets: used 541\nTCP: inuse 27 orphan 0 tw 45 alloc 32 mem 3\nUDP: inuse 8 mem 1\n")
            .unwrap();
        assert_eq!(s.sockets_used, 541);
        assert_eq!(s.tcp_tw, 45);
        assert_eq!(s.tcp_mem, 3);
    }

    #[test]
    fn garbled() {
        assert!(parse("TCP: inuse x\n").unwrap_err().contains("line 1"));
        assert!(
            parse("TCP: inuse 1 orphan 0\n")
                .unwrap_err()
                .contains("no \"tw\"")
        );
        assert!(parse("UDP: inuse 1 mem 1\n").unwrap_err().contains("no \"TCP:\""));
    }
}
