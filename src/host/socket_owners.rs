//! Which process holds which TCP socket: the inode column of `/proc/net/tcp{,6}` matched
//! against the `socket:[INODE]` descriptors of [`super::processes`], as `ss -p` does. A
//! second pass over the tables, beside [`super::tcp_table`] (which counts ports and has
//! no use for inodes): only the local port and the state of a matched socket are kept,
//! counted into its owners, so the memory is that of the inodes wanted (16 bytes each),
//! not of the table. TIME_WAIT sockets have inode 0 and no owner. A socket shared by
//! several processes (inherited over fork) counts for each, as `ss -p` lists each.

use std::io::{BufRead, BufReader};

use super::fs::Root;
use super::processes::ProcessRead;
use super::tcp_table::{LISTEN, TABLES};
use crate::error::{Error, Result};

/// Listening ports kept per process.
pub const LISTENING_MAX: usize = 16;
/// A longer line is not a /proc/net/tcp line (as [`super::tcp_table`] judges it).
const MAX_LINE: usize = 4096;

/// What one process holds of the TCP tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Its sockets found in `/proc/net/tcp{,6}`.
    pub tcp: u64,
    /// Listening ports, ascending, the first [`LISTENING_MAX`].
    pub listening: Vec<u16>,
    /// Listening sockets (all, as `listening` is cut).
    pub listeners: u64,
    /// Connected sockets whose local port is inside `ip_local_port_range` and not a
    /// listening port (an accepted connection holds no port of its own).
    pub ephemeral: u64,
}

/// `local_address` `0100007F:1F90` → the port, 8080.
fn local_port(field: &str) -> Option<u16> {
    let (_, port) = field.rsplit_once(':')?;
    u16::from_str_radix(port, 16).ok()
}

/// Count the TCP sockets of `processes` found in the tables under `root`; `range`: the
/// ephemeral port range. One [`Held`] per process, in the same order.
pub fn match_tcp(root: &Root, processes: &[ProcessRead], range: Option<(u32, u32)>) -> Result<Vec<Held>> {
    let mut wanted: Vec<(u64, u32)> = Vec::new();
    for (i, p) in processes.iter().enumerate() {
        wanted.extend(p.sockets.iter().map(|&inode| (inode, i as u32)));
    }
    let mut held = vec![Held::default(); processes.len()];
    if wanted.is_empty() {
        return Ok(held);
    }
    wanted.sort_unstable();
    // every listening port of the tables (whoever owns it), and the connected sockets in
    // the range by owner, judged once the listeners are all known
    let mut listening = vec![false; 1 << 16];
    let mut in_range: Vec<(u32, u16)> = Vec::new();
    for inside in TABLES {
        let Some(file) = root.open_file(inside)? else {
            continue;
        };
        let shown = root.shown(inside);
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = std::io::Read::take(&mut reader, MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| Error::io(&shown, &e))?;
            if n == 0 {
                break;
            }
            if n > MAX_LINE {
                return Err(Error::host(
                    &shown,
                    format!("a line longer than {MAX_LINE} bytes"),
                ));
            }
            let Ok(text) = std::str::from_utf8(&line) else {
                continue;
            };
            let f: Vec<&str> = text.split_whitespace().take(10).collect();
            // the header, or a line the port scan already judged
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let (Ok(inode), Ok(state), Some(port)) = (
                inode.parse::<u64>(),
                u8::from_str_radix(state, 16),
                local_port(local),
            ) else {
                continue;
            };
            if state == LISTEN {
                listening[usize::from(port)] = true;
            }
            if inode == 0 {
                continue;
            }
            let start = wanted.partition_point(|&(i, _)| i < inode);
            for &(_, owner) in wanted[start..].iter().take_while(|&&(i, _)| i == inode) {
                let h = &mut held[owner as usize];
                h.tcp += 1;
                if state == LISTEN {
                    h.listeners += 1;
                    if !h.listening.contains(&port) {
                        h.listening.push(port);
                    }
                } else if range.is_some_and(|(lo, hi)| (lo..=hi).contains(&u32::from(port))) {
                    in_range.push((owner, port));
                }
            }
        }
    }
    for (owner, port) in in_range {
        if !listening[usize::from(port)] {
            held[owner as usize].ephemeral += 1;
        }
    }
    for h in &mut held {
        h.listening.sort_unstable();
        h.listening.truncate(LISTENING_MAX);
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_of_local_addresses() {
        assert_eq!(local_port("0100007F:1F90"), Some(8080));
        assert_eq!(local_port("00000000000000000000000001000000:01BB"), Some(443));
        assert_eq!(local_port("garbage"), None);
        assert_eq!(local_port("0:10000"), None);
    }

    #[test]
    fn owners_counted_from_a_table() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/net")).unwrap();
        let row = |sl: u32, local: &str, st: &str, inode: u64| {
            format!(
                "{sl:4}: {local} 00000000:0000 {st} 00000000:00000000 00:00000000 00000000  1000 0 {inode} 1\n"
            )
        };
        let mut table = String::from(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
        );
        table += &row(0, "00000000:0050", "0A", 11);
        table += &row(1, "00000000:01BB", "0A", 12);
        table += &row(2, "0100000A:9C40", "01", 13);
        table += &row(3, "0100000A:0050", "01", 14);
        table += &row(4, "0100000A:9C41", "06", 0);
        // a listener inside the range (40050) and the connection it accepted: no port held
        table += &row(5, "00000000:9C72", "0A", 15);
        table += &row(6, "0100000A:9C72", "01", 16);
        std::fs::write(dir.path().join("proc/net/tcp"), table).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let p = |sockets: Vec<u64>| ProcessRead {
            sockets,
            ..ProcessRead::default()
        };
        // 11 and 12 shared by a parent and its worker; 99 is a unix socket
        let procs = [
            p(vec![12, 11, 13, 14, 99]),
            p(vec![11, 12]),
            p(vec![]),
            p(vec![15, 16]),
        ];
        let held = match_tcp(&root, &procs, Some((40000, 40099))).unwrap();
        assert_eq!(
            held[0],
            Held {
                tcp: 4,
                listening: vec![80, 443],
                listeners: 2,
                ephemeral: 1
            }
        );
        assert_eq!((held[1].tcp, held[1].listening.clone()), (2, vec![80, 443]));
        assert_eq!(held[2], Held::default());
        assert_eq!(
            held[3],
            Held {
                tcp: 2,
                listening: vec![40050],
                listeners: 1,
                ephemeral: 0
            }
        );
    }
}
