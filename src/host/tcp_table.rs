//! `/proc/net/tcp` and `/proc/net/tcp6`, streamed: which destinations hold how many
//! ephemeral local ports.
//!
//! A host with a million sockets has a 150 MB table, so it is read line by line into one
//! reused buffer, each line is parsed in place from bytes (no allocation per line), and
//! only an aggregate is kept: a count per destination (remote address, remote port) in a
//! hash map, so memory grows with the number of destinations, not of sockets. The map is
//! bounded ([`MAP_CAP`]); the sockets of further destinations (a crawler's table) are kept
//! as 8-byte records and counted by sorting, which bounds memory in the worst case too.
//!
//! # Format
//! ```text
//!   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid ...
//!    0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 ...
//! ```
//! Addresses are hex in the kernel's byte order: IPv4 is the `__be32` address printed as
//! a native `u32` (`%08X`: 127.0.0.1 is `0100007F` on little-endian x86); IPv6 is the 16
//! bytes printed as four native `u32` words (`::1` is `00000000000000000000000001000000`
//! there). The table is read with the byte order of the machine running sysctune: a
//! fixture root copied from a host of the other endianness would show swapped addresses
//! (the counts stay right). Ports are plain hex (`1F90` = 8080); states are hex
//! (`01` ESTABLISHED, `02` SYN_SENT, `06` TIME_WAIT, `0A` LISTEN, ... see [`STATE_NAMES`]).
//!
//! # What counts as a port held for a destination
//! A socket counts for its destination when
//! - its state is one in which a connection keeps its 4-tuple, and with it its local port:
//!   ESTABLISHED, SYN_SENT, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING
//!   (not LISTEN, not CLOSE, not SYN_RECV / NEW_SYN_RECV, which are inbound requests);
//! - it has a peer (remote port not 0);
//! - its local port is one connect() may pick: inside `ip_local_port_range`, not in
//!   `ip_local_reserved_ports`, and not a port some socket listens on. A listening port
//!   is never given to connect(), and connections accepted on it are inbound: they are
//!   counted as `inbound` and not per destination (a proxy's 800 000 clients would
//!   otherwise fill the map with one entry each). The kernel lists listening sockets
//!   before connections in each table, and `tcp` is read before `tcp6`, so one pass sees
//!   every listener before the connections accepted on it.
//!
//! IPv4-mapped IPv6 destinations (`::ffff:10.0.0.5`, a dual-stack socket talking IPv4)
//! are counted as the IPv4 destination: they draw from the same ports.
//!
//! The key is what the kernel keeps unique (`__inet_check_established`): the source
//! address, the destination address and the destination port. Connections to one
//! destination from two local addresses each have the whole range. Besides, every local
//! port held by such a socket is marked in one bitmap: the ports held across all
//! destinations, the pool that a bind() before connect() draws from.

use super::Root;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::error::{Error, Result};

/// The tables, as paths inside the root, in the order they must be read (listeners of
/// `tcp` before `tcp6`'s connections; see the module documentation).
pub const TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];

/// One table read into a scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableRead {
    /// As seen inside the root (`/proc/net/tcp`).
    pub path: String,
    /// Lines read (the header included); `None` when the file does not exist (IPv6
    /// disabled, or a root without it).
    pub lines: Option<u64>,
}

/// Stream `tcp` and `tcp6` under `root` into `scan`. A missing table is reported as such;
/// a garbled line or a read error is an error naming the file (and the line).
pub fn scan_tables(root: &Root, scan: &mut PortScan) -> Result<Vec<TableRead>> {
    let mut out = Vec::new();
    for shown in TABLES {
        let path = root.shown(shown);
        let Some(file) = root.open_file(shown)? else {
            out.push(TableRead {
                path: shown.to_string(),
                lines: None,
            });
            continue;
        };
        let lines = scan
            .scan(BufReader::with_capacity(256 * 1024, file))
            .map_err(|e| match e {
                ScanError::Io(e) => Error::io(&path, &e),
                ScanError::Line(l) => Error::host(&path, format!("line {}: {}", l.line, l.message)),
            })?;
        out.push(TableRead {
            path: shown.to_string(),
            lines: Some(lines),
        });
    }
    Ok(out)
}

/// TCP states by number (include/net/tcp_states.h); index 0 is unused.
pub const STATE_NAMES: [&str; 13] = [
    "",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
];

pub const ESTABLISHED: u8 = 0x01;
pub const SYN_SENT: u8 = 0x02;
pub const SYN_RECV: u8 = 0x03;
pub const TIME_WAIT: u8 = 0x06;
pub const CLOSE: u8 = 0x07;
pub const LISTEN: u8 = 0x0A;
pub const NEW_SYN_RECV: u8 = 0x0C;

/// Destinations counted in the hash maps: 2^18 × 7/8, the most a table of 2^18 buckets
/// holds (about 6.5 MB for IPv4). Sockets of destinations beyond it are kept as one 8-byte
/// record each and counted by sorting, so a table of a million sockets to a million
/// different destinations stays within ~20 MB instead of a 2^21-bucket map (~75 MB at its
/// last resize). Real hosts have far fewer destinations than sockets.
pub const MAP_CAP: usize = (1 << 18) / 8 * 7;

/// A line longer than this is not a /proc/net/tcp line (the kernel pads IPv4 lines to
/// 149 bytes; IPv6 lines are about 180). Reading stops there instead of buffering a
/// whole file that has no newlines.
const MAX_LINE: u64 = 4096;

/// Sockets holding an ephemeral port for one destination, by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Counts {
    pub time_wait: u32,
    pub established: u32,
    pub syn_sent: u32,
    /// FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING.
    pub other: u32,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.time_wait as u64 + self.established as u64 + self.syn_sent as u64 + self.other as u64
    }

    fn add(&mut self, state: u8) {
        let slot = match state {
            TIME_WAIT => &mut self.time_wait,
            ESTABLISHED => &mut self.established,
            SYN_SENT => &mut self.syn_sent,
            _ => &mut self.other,
        };
        *slot = slot.saturating_add(1);
    }
}

/// A destination address. IPv4-mapped IPv6 addresses are stored as IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Addr {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Addr {
    pub fn is_loopback(&self) -> bool {
        match self {
            Addr::V4(a) => a.is_loopback(),
            Addr::V6(a) => a.is_loopback(),
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::V4(a) => a.fmt(f),
            Addr::V6(a) => a.fmt(f),
        }
    }
}

/// A destination seen from one source address, with its counts: the kernel's unit of
/// port uniqueness for connect().
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The local address the connections leave from.
    pub source: Addr,
    pub addr: Addr,
    pub port: u16,
    pub counts: Counts,
}

impl Destination {
    /// `127.0.0.1:8080`, `[::1]:443`.
    pub fn name(&self) -> String {
        match self.addr {
            Addr::V4(a) => format!("{a}:{}", self.port),
            Addr::V6(a) => format!("[{a}]:{}", self.port),
        }
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The local address, `10.0.0.2` or `2001:db8::2`.
    pub fn source_address(&self) -> String {
        self.source.to_string()
    }

    /// Where `tcp_tw_reuse = 2` applies: a loopback source or destination
    /// (`tcp_twsk_unique` in net/ipv4/tcp_ipv4.c).
    pub fn is_loopback(&self) -> bool {
        self.source.is_loopback() || self.addr.is_loopback()
    }
}

/// A parse error: the 1-based line and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub message: String,
}

/// Why a scan stopped.
#[derive(Debug)]
pub enum ScanError {
    Line(LineError),
    Io(std::io::Error),
}

/// The aggregate of one or more tables (read `tcp`, then `tcp6`, into the same scan).
pub struct PortScan {
    /// One bit per port: connect() may pick it (in the range, not reserved, not listening).
    ephemeral: Box<PortBits>,
    /// One bit per port some socket listens on.
    listening: Box<PortBits>,
    /// One bit per local port held by a socket counted per destination: the pool.
    held: Box<PortBits>,
    /// Keys: source address, destination address (IPv4 as a big-endian u32, its numeric
    /// value), destination port.
    v4: HashMap<(u32, u32, u16), Counts>,
    v6: HashMap<([u8; 16], [u8; 16], u16), Counts>,
    /// Destinations the maps may hold together; sockets of any further destination go to
    /// the spill lists (see [`MAP_CAP`]).
    map_cap: usize,
    /// One record per socket of a destination that found the maps full:
    /// `source << 64 | address << 32 | port << 16 | state`, sorted after each table.
    spill4: Vec<u128>,
    spill6: Vec<([u8; 16], [u8; 16], u16, u8)>,
    /// Distinct destinations in the spill lists (counted when they are sorted).
    spill_destinations: usize,
    /// Every socket line, by state number (0 unused).
    pub states: [u64; 13],
    /// Socket lines read.
    pub sockets: u64,
    /// Sockets counted per destination.
    pub outbound: u64,
    /// Connections on a listening port (accepted, or requests to accept).
    pub inbound: u64,
    /// Connected sockets whose local port connect() would not pick (outside the range,
    /// reserved) and that are not on a listening port: bound explicitly.
    pub not_ephemeral: u64,
    /// Distinct listening ports inside the ephemeral range.
    pub listening_in_range: u64,
}

impl PortScan {
    /// A scan for the ephemeral range `lo..=hi` without the `reserved` ranges.
    pub fn new(lo: u32, hi: u32, reserved: &[(u32, u32)]) -> Self {
        let mut ephemeral = Box::new([0u64; 1024]);
        if lo <= hi {
            for port in lo.min(65535)..=hi.min(65535) {
                set_bit(&mut ephemeral, port as u16, true);
            }
        }
        for &(a, b) in reserved {
            for port in a.min(b).min(65535)..=a.max(b).min(65535) {
                set_bit(&mut ephemeral, port as u16, false);
            }
        }
        PortScan {
            ephemeral,
            listening: Box::new([0u64; 1024]),
            held: Box::new([0u64; 1024]),
            v4: HashMap::new(),
            v6: HashMap::new(),
            map_cap: MAP_CAP,
            spill4: Vec::new(),
            spill6: Vec::new(),
            spill_destinations: 0,
            states: [0; 13],
            sockets: 0,
            outbound: 0,
            inbound: 0,
            not_ephemeral: 0,
            listening_in_range: 0,
        }
    }

    /// The ports some socket listens on, ascending.
    pub fn listening_ports(&self) -> Vec<u16> {
        (0..=u16::MAX).filter(|&p| bit(&self.listening, p)).collect()
    }

    /// Number of distinct destinations seen.
    pub fn destinations(&self) -> usize {
        self.v4.len() + self.v6.len() + self.spill_destinations
    }

    /// A scan whose maps hold at most `cap` destinations (tests of the spill path).
    #[cfg(test)]
    fn with_map_cap(mut self, cap: usize) -> Self {
        self.map_cap = cap;
        self
    }

    /// Distinct local ports of the range held by sockets counted per destination.
    pub fn pool_held(&self) -> u64 {
        self.held.iter().map(|w| w.count_ones() as u64).sum()
    }

    /// Count one socket for a destination (IPv4 addresses as big-endian u32s).
    fn count4(&mut self, source: u32, addr: u32, port: u16, state: u8) {
        let key = (source, addr, port);
        if let Some(c) = self.v4.get_mut(&key) {
            c.add(state);
        } else if self.v4.len() + self.v6.len() < self.map_cap {
            self.v4.entry(key).or_default().add(state);
        } else {
            self.spill4
                .push((source as u128) << 64 | (addr as u128) << 32 | (port as u128) << 16 | state as u128);
        }
    }

    fn count6(&mut self, source: [u8; 16], addr: [u8; 16], port: u16, state: u8) {
        let key = (source, addr, port);
        if let Some(c) = self.v6.get_mut(&key) {
            c.add(state);
        } else if self.v4.len() + self.v6.len() < self.map_cap {
            self.v6.entry(key).or_default().add(state);
        } else {
            self.spill6.push((source, addr, port, state));
        }
    }

    /// Sort the spill lists into runs, one per destination (cheap when already sorted):
    /// after the last socket of a table or a dump.
    pub(crate) fn sort_spill(&mut self) {
        self.spill4.sort_unstable();
        self.spill6.sort_unstable();
        self.spill_destinations = self.spill4.chunk_by(|a, b| a >> 16 == b >> 16).count()
            + self
                .spill6
                .chunk_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2))
                .count();
    }

    /// Every destination, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = Destination> + '_ {
        self.v4
            .iter()
            .map(|(&(s, a, port), &counts)| Destination {
                source: Addr::V4(Ipv4Addr::from(s)),
                addr: Addr::V4(Ipv4Addr::from(a)),
                port,
                counts,
            })
            .chain(self.v6.iter().map(|(&(s, a, port), &counts)| Destination {
                source: Addr::V6(Ipv6Addr::from(s)),
                addr: Addr::V6(Ipv6Addr::from(a)),
                port,
                counts,
            }))
            .chain(self.spill4.chunk_by(|a, b| a >> 16 == b >> 16).map(|run| {
                let mut counts = Counts::default();
                for r in run {
                    counts.add(*r as u8);
                }
                Destination {
                    source: Addr::V4(Ipv4Addr::from((run[0] >> 64) as u32)),
                    addr: Addr::V4(Ipv4Addr::from((run[0] >> 32) as u32)),
                    port: (run[0] >> 16) as u16,
                    counts,
                }
            }))
            .chain(
                self.spill6
                    .chunk_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2))
                    .map(|run| {
                        let mut counts = Counts::default();
                        for r in run {
                            counts.add(r.3);
                        }
                        Destination {
                            source: Addr::V6(Ipv6Addr::from(run[0].0)),
                            addr: Addr::V6(Ipv6Addr::from(run[0].1)),
                            port: run[0].2,
                            counts,
                        }
                    }),
            )
    }

    /// The `n` busiest destinations, busiest first (ties by address and port, so the
    /// order is stable). A heap of `n`, not a sort of every destination.
    pub fn top(&self, n: usize) -> Vec<Destination> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        // Greater = worse rank; the heap's top is the worst kept.
        type Rank = (Reverse<u64>, Addr, u16, Addr);
        let rank = |d: &Destination| -> Rank { (Reverse(d.counts.total()), d.addr, d.port, d.source) };
        // `--top` is the user's number: never more room than there are destinations.
        let mut heap: BinaryHeap<(Rank, Counts)> =
            BinaryHeap::with_capacity(n.min(self.destinations()).saturating_add(1));
        if n == 0 {
            return Vec::new();
        }
        for d in self.iter() {
            let key = rank(&d);
            if heap.len() < n {
                heap.push((key, d.counts));
            } else if heap.peek().is_some_and(|(worst, _)| key < *worst) {
                heap.pop();
                heap.push((key, d.counts));
            }
        }
        heap.into_sorted_vec()
            .into_iter()
            .map(|((_, addr, port, source), counts)| Destination {
                source,
                addr,
                port,
                counts,
            })
            .collect()
    }

    /// Read one table to the end; the number of lines. Errors name the 1-based line.
    pub fn scan<R: BufRead>(&mut self, mut reader: R) -> Result<u64, ScanError> {
        let mut buf = Vec::with_capacity(256);
        let mut line_no: u64 = 0;
        loop {
            buf.clear();
            let n = std::io::Read::take(&mut reader, MAX_LINE + 1)
                .read_until(b'\n', &mut buf)
                .map_err(ScanError::Io)?;
            if n == 0 {
                self.sort_spill();
                return Ok(line_no);
            }
            line_no += 1;
            if buf.last() == Some(&b'\n') {
                buf.pop();
            } else if buf.len() as u64 > MAX_LINE {
                return Err(ScanError::Line(LineError {
                    line: line_no,
                    message: format!(
                        "longer than {MAX_LINE} bytes; not a /proc/net/tcp table line: {}",
                        show(&buf)
                    ),
                }));
            }
            self.line(&buf, line_no).map_err(|message| {
                ScanError::Line(LineError {
                    line: line_no,
                    message,
                })
            })?;
        }
    }

    /// One line, without its newline.
    fn line(&mut self, line: &[u8], line_no: u64) -> Result<(), String> {
        let mut rest = line;
        let Some(sl) = field(&mut rest) else {
            return Ok(()); // blank line
        };
        if line_no == 1 && sl == b"sl" {
            return Ok(()); // the header
        }
        let bad = |what: &str| format!("{what}: {}", show(line));
        let digits = sl.strip_suffix(b":").unwrap_or(b"");
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad("expected \"N: local_address rem_address st ...\""));
        }
        let local = field(&mut rest).ok_or_else(|| bad("no local_address"))?;
        let remote = field(&mut rest).ok_or_else(|| bad("no rem_address"))?;
        let state = field(&mut rest).ok_or_else(|| bad("no state"))?;
        let (local_addr, local_port) =
            endpoint(local).ok_or_else(|| bad("local_address is not HEXADDR:HEXPORT"))?;
        let (remote_addr, remote_port) =
            endpoint(remote).ok_or_else(|| bad("rem_address is not HEXADDR:HEXPORT"))?;
        let state = match state {
            [a, b] => (hex(*a).zip(hex(*b))).map(|(a, b)| a << 4 | b),
            _ => None,
        }
        .filter(|s| (1..=12).contains(s))
        .ok_or_else(|| bad("state is not a TCP state 01..0C"))?;

        self.socket(state, local_addr, local_port, remote_addr, remote_port)
            .map_err(bad)
    }

    /// Count one socket, from a table line or a netlink message: its state (1..=12),
    /// local and remote address and port. The order matters as in a table: listeners
    /// first (see the module documentation). Err: what is wrong with it.
    pub(crate) fn socket(
        &mut self,
        state: u8,
        local_addr: RawAddr,
        local_port: u16,
        remote_addr: RawAddr,
        remote_port: u16,
    ) -> Result<(), &'static str> {
        if !(1..=12).contains(&state) {
            return Err("state is not a TCP state 01..0C");
        }
        if local_addr.len() != remote_addr.len() {
            return Err("local and remote addresses of different families");
        }
        self.sockets += 1;
        self.states[state as usize] += 1;
        if state == LISTEN {
            if !bit(&self.listening, local_port) {
                set_bit(&mut self.listening, local_port, true);
                if bit(&self.ephemeral, local_port) {
                    self.listening_in_range += 1;
                }
            }
            // connect() never picks a port some socket is bound to
            set_bit(&mut self.ephemeral, local_port, false);
            return Ok(());
        }
        if state == CLOSE || remote_port == 0 {
            return Ok(());
        }
        if state == SYN_RECV || state == NEW_SYN_RECV || bit(&self.listening, local_port) {
            self.inbound += 1;
            return Ok(());
        }
        if !bit(&self.ephemeral, local_port) {
            self.not_ephemeral += 1;
            return Ok(());
        }
        self.outbound += 1;
        set_bit(&mut self.held, local_port, true);
        match (local_addr, remote_addr) {
            (RawAddr::V4(s), RawAddr::V4(a)) => self.count4(s, a, remote_port, state),
            (RawAddr::V6(s), RawAddr::V6(a)) => match (v4_mapped(&s), v4_mapped(&a)) {
                (Some(s4), Some(a4)) => self.count4(s4, a4, remote_port, state),
                _ => self.count6(s, a, remote_port, state),
            },
            _ => return Err("local and remote addresses of different families"),
        }
        Ok(())
    }
}

type PortBits = [u64; 1024];

fn bit(bits: &PortBits, port: u16) -> bool {
    bits[port as usize / 64] & (1 << (port % 64)) != 0
}

fn set_bit(bits: &mut PortBits, port: u16, on: bool) {
    if on {
        bits[port as usize / 64] |= 1 << (port % 64);
    } else {
        bits[port as usize / 64] &= !(1 << (port % 64));
    }
}

/// A parsed address in natural byte order: IPv4 as its numeric value (127.0.0.1 is
/// 0x7F000001), IPv6 as its 16 bytes.
pub(crate) enum RawAddr {
    V4(u32),
    V6([u8; 16]),
}

impl RawAddr {
    fn len(&self) -> usize {
        match self {
            RawAddr::V4(_) => 4,
            RawAddr::V6(_) => 16,
        }
    }
}

/// The next space-separated field, or `None` at the end.
fn field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let start = rest.iter().position(|&b| b != b' ' && b != b'\t')?;
    let s = &rest[start..];
    let end = s.iter().position(|&b| b == b' ' || b == b'\t').unwrap_or(s.len());
    *rest = &s[end..];
    Some(&s[..end])
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex_u32(s: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &b in s {
        v = v << 4 | hex(b)? as u32;
    }
    Some(v)
}

/// `0100007F:1F90` → (127.0.0.1, 8080) with the kernel's byte order undone.
fn endpoint(s: &[u8]) -> Option<(RawAddr, u16)> {
    let colon = s.iter().position(|&b| b == b':')?;
    let (addr, port) = (&s[..colon], &s[colon + 1..]);
    if port.len() != 4 {
        return None;
    }
    let port = hex_u32(port)? as u16;
    let addr = match addr.len() {
        // the address bytes, printed as one native-endian u32
        8 => RawAddr::V4(u32::from_be_bytes(hex_u32(addr)?.to_ne_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, word) in addr.chunks_exact(8).enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&hex_u32(word)?.to_ne_bytes());
            }
            RawAddr::V6(bytes)
        }
        _ => return None,
    };
    Some((addr, port))
}

/// `::ffff:a.b.c.d` → the IPv4 address as a big-endian u32.
fn v4_mapped(a: &[u8; 16]) -> Option<u32> {
    (a[..10].iter().all(|&b| b == 0) && a[10] == 0xff && a[11] == 0xff)
        .then(|| u32::from_be_bytes([a[12], a[13], a[14], a[15]]))
}

/// A line for an error message: lossy UTF-8, control characters escaped, at most 100
/// characters.
fn show(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let trimmed = text.trim();
    let mut out: String = trimmed.chars().take(100).collect::<String>();
    if trimmed.chars().count() > 100 {
        out.push('…');
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER4: &str =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
    const HEADER6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    /// A line as the kernel writes it, with the address fields given.
    fn line(local: &str, remote: &str, state: &str) -> String {
        format!(
            "   0: {local} {remote} {state} 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n"
        )
    }

    fn scan(lo: u32, hi: u32, reserved: &[(u32, u32)], tables: &[&str]) -> Result<PortScan, LineError> {
        let mut s = PortScan::new(lo, hi, reserved);
        for t in tables {
            match s.scan(t.as_bytes()) {
                Ok(_) => {}
                Err(ScanError::Line(e)) => return Err(e),
                Err(ScanError::Io(e)) => panic!("{e}"),
            }
        }
        Ok(s)
    }

    fn names(s: &PortScan) -> Vec<(String, u64)> {
        s.top(100).iter().map(|d| (d.name(), d.counts.total())).collect()
    }

    // The tables below are in x86's (little-endian) byte order, as captured on a real
    // kernel (kernel.md, real-clients.md).
    #[cfg(target_endian = "little")]
    #[test]
    fn ipv4_byte_order_and_states() {
        let t = format!(
            "{HEADER4}{}{}{}{}{}",
            line("00000000:1F90", "00000000:0000", "0A"), // listening 0.0.0.0:8080
            line("0100007F:9C40", "0100007F:1F90", "06"), // 127.0.0.1:40000 → :8080 TIME_WAIT
            line("0100007F:9C41", "0100007F:1F90", "01"), // ESTABLISHED
            line("0100007F:9C42", "0100007F:1F90", "02"), // SYN_SENT
            line("0A00A8C0:9C43", "0501000A:01BB", "08"), // 192.168.0.10 → 10.0.1.5:443 CLOSE_WAIT
        );
        let s = scan(40000, 40009, &[], &[&t]).unwrap();
        assert_eq!(
            names(&s),
            [("127.0.0.1:8080".to_string(), 3), ("10.0.1.5:443".to_string(), 1)]
        );
        let top = s.top(1)[0];
        assert_eq!(
            top.counts,
            Counts {
                time_wait: 1,
                established: 1,
                syn_sent: 1,
                other: 0
            }
        );
        assert_eq!(s.sockets, 5);
        assert_eq!(s.states[TIME_WAIT as usize], 1);
        assert_eq!(s.states[LISTEN as usize], 1);
        assert_eq!(s.outbound, 4);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv6_byte_order_and_mapped_addresses() {
        let t6 = format!(
            "{HEADER6}{}{}{}{}",
            // [::]:8080 listening
            line(
                "00000000000000000000000000000000:1F90",
                "00000000000000000000000000000000:0000",
                "0A"
            ),
            // [::1]:40001 → [::1]:443, TIME_WAIT
            line(
                "00000000000000000000000001000000:9C41",
                "00000000000000000000000001000000:01BB",
                "06"
            ),
            // ::ffff:127.0.0.1:40002 → ::ffff:127.0.0.1:8080: counted as 127.0.0.1:8080
            line(
                "0000000000000000FFFF00000100007F:9C42",
                "0000000000000000FFFF00000100007F:1F90",
                "06"
            ),
            // 2001:db8::5 → [2001:db8::1]:5432 ESTABLISHED
            line(
                "B80D0120000000000000000005000000:9C43",
                "B80D0120000000000000000001000000:1538",
                "01"
            ),
        );
        let t4 = format!("{HEADER4}{}", line("0100007F:9C44", "0100007F:1F90", "06"));
        let s = scan(40000, 40009, &[], &[&t4, &t6]).unwrap();
        assert_eq!(
            names(&s),
            [
                ("127.0.0.1:8080".to_string(), 2),
                ("[::1]:443".to_string(), 1),
                ("[2001:db8::1]:5432".to_string(), 1),
            ]
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn only_ephemeral_ports_of_connections_count() {
        let t = format!(
            "{HEADER4}{}{}{}{}{}{}{}{}",
            line("00000000:9C45", "00000000:0000", "0A"), // listening on 40005, in the range
            line("0100007F:9C45", "0100007F:D431", "01"), // accepted on it: inbound
            line("0100007F:9C45", "0100007F:D432", "03"), // SYN_RECV: inbound
            line("0100007F:0050", "0100007F:D433", "01"), // local port 80: outside the range
            line("0100007F:9C40", "0100007F:1F90", "07"), // CLOSE: no peer
            line("0100007F:9C41", "00000000:0000", "01"), // no remote port
            line("0100007F:9C42", "0100007F:1F90", "06"), // reserved port 40002
            line("0100007F:9C43", "0100007F:1F90", "06"), // counted
        );
        let s = scan(40000, 40009, &[(40002, 40002)], &[&t]).unwrap();
        assert_eq!(names(&s), [("127.0.0.1:8080".to_string(), 1)]);
        assert_eq!(s.inbound, 2);
        assert_eq!(s.not_ephemeral, 2);
        assert_eq!(s.outbound, 1);
        assert_eq!(s.listening_in_range, 1);
        assert_eq!(s.sockets, 8);
    }

    #[test]
    fn top_is_ordered_and_bounded() {
        let mut t = String::from(HEADER4);
        // destination port p gets p sockets
        let mut local = 40000;
        for p in 1..=6u32 {
            for _ in 0..p {
                t.push_str(&line(
                    &format!("0100007F:{local:04X}"),
                    &format!("0100007F:{p:04X}"),
                    "06",
                ));
                local += 1;
            }
        }
        let s = scan(40000, 40100, &[], &[&t]).unwrap();
        let top: Vec<u16> = s.top(3).iter().map(|d| d.port).collect();
        assert_eq!(top, [6, 5, 4]);
        assert_eq!(s.top(0).len(), 0);
        assert_eq!(s.top(50).len(), 6);
        assert_eq!(s.destinations(), 6);
        assert_eq!(s.iter().map(|d| d.counts.total()).sum::<u64>(), 21);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn destinations_beyond_the_map_cap_are_counted_the_same() {
        let mut t = String::from(HEADER4);
        let mut t6 = String::from(HEADER6);
        let mut local = 40000;
        // 7 destinations, interleaved so that some first appear after the maps are full
        for round in 0..5u32 {
            for p in 1..=7u32 {
                if round < p {
                    t.push_str(&line(
                        &format!("0100007F:{local:04X}"),
                        &format!("0{p}00007F:{p:04X}"),
                        "06",
                    ));
                    let remote6 = format!("0000000000000000FFFF00000{p}00007F:{p:04X}");
                    t6.push_str(&line("0000000000000000FFFF00000100007F:9C40", &remote6, "01"));
                    t6.push_str(&line(
                        &format!("00000000000000000000000001000000:{local:04X}"),
                        &format!("00000000000000000000000001000000:{p:04X}"),
                        "02",
                    ));
                    local += 1;
                }
            }
        }
        let full = scan(40000, 40100, &[], &[&t, &t6]).unwrap();
        for cap in [0, 1, 3] {
            let mut s = PortScan::new(40000, 40100, &[]).with_map_cap(cap);
            s.scan(t.as_bytes()).map_err(|_| ()).unwrap();
            s.scan(t6.as_bytes()).map_err(|_| ()).unwrap();
            assert_eq!(s.destinations(), full.destinations(), "cap {cap}");
            assert_eq!(s.top(100), full.top(100), "cap {cap}");
        }
        assert_eq!(full.destinations(), 14);
        // IPv4-mapped sockets joined their IPv4 destination
        // 5, 6 and 7 tie at 10 sockets: the lowest address first
        assert_eq!(full.top(1)[0].name(), "127.0.0.5:5");
        assert_eq!(full.top(1)[0].counts.total(), 10);
        assert_eq!(full.top(1)[0].counts.established, 5);
    }

    #[test]
    fn garbled_lines_name_the_line() {
        let ok = line("0100007F:9C40", "0100007F:1F90", "06");
        let cases = [
            (line("0100007F:9C40", "0100007F:1F90", "0D"), "not a TCP state"),
            (line("0100007F:9C40", "0100007F:1F90", "6"), "not a TCP state"),
            (line("0100007G:9C40", "0100007F:1F90", "06"), "local_address"),
            (line("0100007F:9C4", "0100007F:1F90", "06"), "local_address"),
            (line("0100007F9C40", "0100007F:1F90", "06"), "local_address"),
            (line("0100007F:9C40", "0100007F", "06"), "rem_address"),
            (
                line("0100007F:9C40", "00000000000000000000000001000000:1F90", "06"),
                "families",
            ),
            ("   0: 0100007F:9C40 0100007F:1F90\n".to_string(), "no state"),
            (
                "   x: 0100007F:9C40 0100007F:1F90 06\n".to_string(),
                "expected \"N:",
            ),
            ("garbage\n".to_string(), "expected \"N:"),
            ("\u{fffd}\u{1}\n".to_string(), "expected \"N:"),
        ];
        for (bad, why) in cases {
            let t = format!("{HEADER4}{ok}{bad}{ok}");
            let e = scan(40000, 40009, &[], &[&t])
                .err()
                .unwrap_or_else(|| panic!("accepted {bad:?}"));
            assert_eq!(e.line, 3, "{bad:?}");
            assert!(e.message.contains(why), "{bad:?}: {}", e.message);
        }
        // non-UTF-8 bytes never panic
        let mut s = PortScan::new(1, 2, &[]);
        let bytes: &[u8] = b"  sl x\n\xff\xfe 1: \x80\n";
        match s.scan(bytes) {
            Err(ScanError::Line(e)) => assert_eq!(e.line, 2),
            other => panic!("{:?}", other.is_ok()),
        }
    }

    #[test]
    fn an_endless_line_stops_early() {
        let t = format!("{HEADER4}{}", "1".repeat(10_000));
        let e = scan(40000, 40009, &[], &[&t]).err().unwrap();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("longer than 4096 bytes"), "{}", e.message);
    }

    #[test]
    fn empty_and_header_only_tables() {
        let s = scan(40000, 40009, &[], &["", HEADER4, "\n\n"]).unwrap();
        assert_eq!(s.sockets, 0);
        assert_eq!(s.destinations(), 0);
    }

    #[test]
    fn scan_tables_reports_missing_files_and_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/net")).unwrap();
        std::fs::write(
            dir.path().join("proc/net/tcp"),
            format!("{HEADER4}{}", line("0100007F:9C40", "0100007F:1F90", "06")),
        )
        .unwrap();
        let mut s = PortScan::new(40000, 40009, &[]);
        let read = scan_tables(&Root::open(dir.path()).unwrap(), &mut s).unwrap();
        assert_eq!(read[0].lines, Some(2));
        assert_eq!(read[1].lines, None);
        std::fs::write(dir.path().join("proc/net/tcp6"), "  sl\n   0: zz\n").unwrap();
        let e = scan_tables(
            &Root::open(dir.path()).unwrap(),
            &mut PortScan::new(40000, 40009, &[]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("proc/net/tcp6: line 2:"), "{e}");
    }
}
