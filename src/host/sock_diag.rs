//! The running kernel's TCP sockets over NETLINK_SOCK_DIAG (inet_diag), as `ss` reads
//! them, filtered in the kernel to the local ports of `ip_local_port_range`.
//!
//! `/proc/net/tcp` makes the kernel format every socket as text, and a proxy's 800 000
//! inbound connections are most of it; doctor needs none of them (an inbound connection's
//! local port is the listening port, outside the range). So on a live host doctor asks
//! the kernel for a dump (`SOCK_DIAG_BY_FAMILY`, `NLM_F_DUMP`) of the TCP sockets of each
//! family, all states (TIME_WAIT and the SYN_RECV requests come from the same walk of the
//! hash tables), with an `INET_DIAG_REQ_BYTECODE` filter the kernel runs on every socket
//! before it formats it (`inet_diag_bc_run` in net/ipv4/inet_diag.c). The filter is the
//! one `ss` compiles for `( sport >= :LO and sport <= :HI )` (`ssfilter_bytecompile` in
//! iproute2's misc/ss.c):
//!
//! ```text
//! offset  code  yes  no                    meaning
//!  0      S_GE   8   20 (past the end)     local port >= LO, else reject
//!  4      -      -   LO                    the operand of S_GE
//!  8      S_LE   8   12 (past the end)     local port <= HI, else reject
//! 12      -      -   HI                    the operand of S_LE
//! ```
//!
//! The kernel takes `yes` or `no` bytes forward after each test and accepts a socket when
//! it lands exactly on the end; `no` pointing 4 bytes past the end rejects. It audits the
//! program first (`inet_diag_bc_audit`: each jump a multiple of 4, at least the op's
//! length, at most 4 past the end).
//!
//! Kept: listeners and connections whose local port is in the range (so the listeners
//! inside the range, which connect() does not pick, and every socket that holds a port of
//! the range). Dropped: everything on a port outside the range, which doctor's `ports`
//! findings never count. The IPv4 dump comes before the IPv6 dump and each lists its
//! listeners before its connections, the order `/proc/net/tcp` then `tcp6` have, so
//! [`PortScan`] sees every listener before the connections on its port either way.
//!
//! Each reply is parsed from bytes in place: a datagram holds netlink messages
//! (`nlmsghdr`, 16 bytes, then a 72-byte `inet_diag_msg` and attributes, ignored). A
//! message of another request, a truncated datagram, a length that does not fit, an
//! unknown message type, a family or state the request did not ask for, or an
//! `NLMSG_ERROR` is an error; `NLMSG_DONE` ends one family's dump. Nothing is kept per
//! socket: each one goes straight into the scan.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, setsockopt, socket,
    sockopt,
};
use nix::sys::time::TimeVal;

use super::tcp_table::{PortScan, RawAddr, TableRead};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
/// NLM_F_ROOT | NLM_F_MATCH.
const NLM_F_DUMP: u16 = 0x300;
/// include/uapi/linux/sock_diag.h.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states (u32), sockid (48).
const REQ_V2_LEN: usize = 56;
/// `struct inet_diag_msg`: family, state, timer, retrans, sockid (48), expires, rqueue,
/// wqueue, uid, inode.
const DIAG_MSG_LEN: usize = 72;
/// include/uapi/linux/inet_diag.h.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;
/// Every state, TCP_ESTABLISHED (1) to TCP_NEW_SYN_RECV (12), as `ss -a` asks.
const ALL_STATES: u32 = ((1 << 13) - 1) & !1;
/// A dump datagram is at most 32 KiB (netlink_recvmsg caps what it learns from the
/// reader); twice that, and MSG_TRUNC says if one was longer anyway.
const RECV_BUF: usize = 64 * 1024;
/// The most one recv() waits for the kernel: a dump never stalls, but nothing may hang.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the sockets did not come from netlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiagError {
    /// Netlink sock_diag cannot be used here (no permission, no kernel support): read
    /// `/proc/net/tcp` instead. The text says what refused, with the kernel's error.
    Unavailable(String, Errno),
    /// The kernel's answer was wrong or broke off: an error, not a fallback.
    Failed(String),
}

impl std::fmt::Display for DiagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiagError::Unavailable(s, _) | DiagError::Failed(s) => f.write_str(s),
        }
    }
}

/// Errors that mean "this kernel or this process cannot do sock_diag": the fallback.
fn unavailable(e: Errno) -> bool {
    matches!(
        e,
        Errno::EPERM
            | Errno::EACCES
            | Errno::ENOENT
            | Errno::EOPNOTSUPP
            | Errno::EPROTONOSUPPORT
            | Errno::EAFNOSUPPORT
    )
}

fn classify(what: &str, e: Errno) -> DiagError {
    let text = format!("NETLINK_SOCK_DIAG {what}: {} ({e:?})", e.desc());
    if unavailable(e) {
        DiagError::Unavailable(text, e)
    } else {
        DiagError::Failed(text)
    }
}

/// The filter program: keep the sockets whose local port is in `lo..=hi`.
pub fn bytecode(lo: u16, hi: u16) -> [u8; 16] {
    let op = |code: u8, yes: u8, no: u16| {
        let n = no.to_ne_bytes();
        [code, yes, n[0], n[1]]
    };
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&op(INET_DIAG_BC_S_GE, 8, 20));
    out[4..8].copy_from_slice(&op(0, 0, lo));
    out[8..12].copy_from_slice(&op(INET_DIAG_BC_S_LE, 8, 12));
    out[12..16].copy_from_slice(&op(0, 0, hi));
    out
}

/// The dump request for the TCP sockets of `family` with local port in `lo..=hi`:
/// nlmsghdr, inet_diag_req_v2, one INET_DIAG_REQ_BYTECODE attribute.
pub fn request(family: u8, seq: u32, lo: u16, hi: u16) -> Vec<u8> {
    let bc = bytecode(lo, hi);
    let attr_len = 4 + bc.len();
    let len = NLMSG_HDRLEN + REQ_V2_LEN + attr_len;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it in
    m.extend_from_slice(&[family, IPPROTO_TCP, 0, 0]);
    m.extend_from_slice(&ALL_STATES.to_ne_bytes());
    m.extend_from_slice(&[0u8; 48]); // inet_diag_sockid: no exact socket asked for
    m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    m.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    m.extend_from_slice(&bc);
    m
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn family_name(family: u8) -> &'static str {
    if family == AF_INET { "AF_INET" } else { "AF_INET6" }
}

/// One datagram of the dump of request `seq` for `family`: each socket goes into
/// `scan` and is counted in `sockets`. `Ok(true)` at `NLMSG_DONE`.
pub fn datagram(
    buf: &[u8],
    seq: u32,
    family: u8,
    scan: &mut PortScan,
    sockets: &mut u64,
) -> Result<bool, DiagError> {
    let bad = |at: usize, what: String| {
        DiagError::Failed(format!(
            "NETLINK_SOCK_DIAG {} dump: malformed reply at byte {at} of a {}-byte datagram: {what}",
            family_name(family),
            buf.len()
        ))
    };
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        if rest.len() < NLMSG_HDRLEN {
            return Err(bad(
                at,
                format!("{} trailing bytes, not a netlink header", rest.len()),
            ));
        }
        let len = u32_at(rest, 0) as usize;
        let kind = u16_at(rest, 4);
        let msg_seq = u32_at(rest, 8);
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(bad(
                at,
                format!(
                    "nlmsg_len {len} (at least {NLMSG_HDRLEN}, at most the {} bytes left)",
                    rest.len()
                ),
            ));
        }
        if msg_seq != seq {
            return Err(bad(
                at,
                format!("sequence number {msg_seq}, not {seq} of this request"),
            ));
        }
        let payload = &rest[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_NOOP => {}
            NLMSG_DONE => {
                // the dump's own status: negative when it failed midway
                if payload.len() >= 4 {
                    let status = u32_at(payload, 0) as i32;
                    if status < 0 {
                        return Err(classify(
                            &format!("{} dump ended", family_name(family)),
                            Errno::from_raw(-status),
                        ));
                    }
                }
                return Ok(true);
            }
            NLMSG_ERROR => {
                if payload.len() < 4 {
                    return Err(bad(at, "NLMSG_ERROR without its error number".into()));
                }
                let error = u32_at(payload, 0) as i32;
                if error == 0 {
                    return Err(bad(at, "an acknowledgement, not a dump".into()));
                }
                return Err(classify(
                    &format!("{} dump", family_name(family)),
                    Errno::from_raw(error.saturating_neg()),
                ));
            }
            SOCK_DIAG_BY_FAMILY => {
                if payload.len() < DIAG_MSG_LEN {
                    return Err(bad(
                        at,
                        format!("inet_diag_msg of {} bytes, not {DIAG_MSG_LEN}", payload.len()),
                    ));
                }
                let (msg_family, state) = (payload[0], payload[1]);
                if msg_family != family {
                    return Err(bad(at, format!("a socket of family {msg_family}, not {family}")));
                }
                // inet_diag_sockid at 4: sport, dport (big-endian), src[16], dst[16]
                let sport = u16::from_be_bytes([payload[4], payload[5]]);
                let dport = u16::from_be_bytes([payload[6], payload[7]]);
                let (src, dst) = (&payload[8..24], &payload[24..40]);
                let (local, remote) = if family == AF_INET {
                    let v4 = |b: &[u8]| RawAddr::V4(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    (v4(src), v4(dst))
                } else {
                    let v6 = |b: &[u8]| {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        RawAddr::V6(a)
                    };
                    (v6(src), v6(dst))
                };
                scan.socket(state, local, sport, remote, dport)
                    .map_err(|e| bad(at, format!("{e} (state {state})")))?;
                *sockets += 1;
            }
            other => {
                return Err(bad(
                    at,
                    format!("message type {other}, not a socket, DONE or ERROR"),
                ));
            }
        }
        // messages are 4-byte aligned; the last one may end the datagram unpadded
        at += len.next_multiple_of(4).min(rest.len());
    }
    Ok(false)
}

/// Dump the TCP sockets of both families with local port in `lo..=hi` into `scan`; what
/// was read, one entry per family (`lines`: the sockets; `None` for IPv6 where the kernel
/// has no IPv6 diag, as a missing `tcp6`). On [`DiagError::Unavailable`] the scan may
/// hold part of a dump: start a new one for the fallback.
pub fn scan_sockets(lo: u32, hi: u32, scan: &mut PortScan) -> Result<Vec<TableRead>, DiagError> {
    let (lo, hi) = (lo.min(65535) as u16, hi.min(65535) as u16);
    let fd: OwnedFd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
    .map_err(|e| classify("socket()", e))?;
    let timeout = TimeVal::new(RECV_TIMEOUT.as_secs() as _, 0);
    setsockopt(&fd, sockopt::ReceiveTimeout, &timeout).map_err(|e| classify("SO_RCVTIMEO", e))?;
    let kernel = NetlinkAddr::new(0, 0);
    let mut buf = vec![0u8; RECV_BUF];
    let mut read = Vec::new();
    for (seq, family, name) in [(1, AF_INET, "tcp"), (2, AF_INET6, "tcp6")] {
        let req = request(family, seq, lo, hi);
        match sendto(fd.as_raw_fd(), &req, &kernel, MsgFlags::empty()) {
            Ok(n) if n == req.len() => {}
            Ok(n) => {
                return Err(DiagError::Failed(format!(
                    "NETLINK_SOCK_DIAG: sent {n} of {} bytes",
                    req.len()
                )));
            }
            Err(e) => return Err(classify("sendto()", e)),
        }
        let mut sockets = 0;
        let lines = loop {
            let n = match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_TRUNC) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    return Err(DiagError::Failed(format!(
                        "NETLINK_SOCK_DIAG {} dump: no answer from the kernel in {} s",
                        family_name(family),
                        RECV_TIMEOUT.as_secs()
                    )));
                }
                Err(e) => return Err(classify("recv()", e)),
            };
            if n > buf.len() {
                return Err(DiagError::Failed(format!(
                    "NETLINK_SOCK_DIAG {} dump: a {n}-byte datagram, truncated to {}",
                    family_name(family),
                    buf.len()
                )));
            }
            if n == 0 {
                return Err(DiagError::Failed(format!(
                    "NETLINK_SOCK_DIAG {} dump: an empty datagram before NLMSG_DONE",
                    family_name(family)
                )));
            }
            match datagram(&buf[..n], seq, family, scan, &mut sockets) {
                Ok(false) => {}
                Ok(true) => break Some(sockets),
                // a kernel without IPv6 diag: no IPv6 sockets, like a missing tcp6
                Err(DiagError::Unavailable(_, Errno::ENOENT | Errno::EAFNOSUPPORT | Errno::EOPNOTSUPP))
                    if family == AF_INET6 && sockets == 0 =>
                {
                    break None;
                }
                Err(e) => return Err(e),
            }
        };
        read.push(TableRead {
            path: format!("netlink:{name}"),
            lines,
        });
    }
    scan.sort_spill();
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's `inet_diag_bc_audit` (net/ipv4/inet_diag.c) for the port ops used
    /// here: `Err` where the kernel answers EINVAL.
    fn audit(bc: &[u8]) -> Result<(), String> {
        let total = bc.len() as i64;
        let mut at = 0usize;
        let mut len = total;
        while len > 0 {
            let op = &bc[at..];
            let (code, yes, no) = (op[0], op[1] as i64, u16_at(op, 2) as i64);
            let min_len = match code {
                INET_DIAG_BC_S_GE | INET_DIAG_BC_S_LE => 8,
                c => return Err(format!("op {c} not expected")),
            };
            if len < min_len {
                return Err("port op without its operand".into());
            }
            if no < min_len || no > len + 4 || no & 3 != 0 {
                return Err(format!("no {no} at {at}"));
            }
            if yes < min_len || yes > len + 4 || yes & 3 != 0 {
                return Err(format!("yes {yes} at {at}"));
            }
            at += yes as usize;
            len -= yes;
        }
        if len == 0 {
            Ok(())
        } else {
            Err(format!("ends at {len}"))
        }
    }

    /// The kernel's `inet_diag_bc_run` for the port ops: whether a socket with local
    /// port `sport` is kept.
    fn run(bc: &[u8], sport: u16) -> bool {
        let mut at = 0usize;
        let mut len = bc.len() as i64;
        while len > 0 {
            let op = &bc[at..];
            let operand = u16_at(op, 6);
            let yes = match op[0] {
                INET_DIAG_BC_S_GE => sport >= operand,
                INET_DIAG_BC_S_LE => sport <= operand,
                _ => unreachable!(),
            };
            let step = if yes { op[1] as i64 } else { u16_at(op, 2) as i64 };
            len -= step;
            at = at.saturating_add(step as usize);
        }
        len == 0
    }

    #[test]
    fn the_filter_keeps_the_range_and_passes_the_kernels_audit() {
        for (lo, hi) in [(32768, 60999), (40000, 40009), (1, 65535), (5, 5), (9, 3)] {
            let bc = bytecode(lo, hi);
            audit(&bc).unwrap();
            for port in [
                0, 1, 2, 3, 4, 5, 6, 9, 10, 32767, 32768, 40000, 40009, 40010, 60999, 61000, 65535,
            ] {
                assert_eq!(run(&bc, port), (lo..=hi).contains(&port), "{lo}-{hi} port {port}");
            }
        }
    }

    #[test]
    fn the_request_is_laid_out_as_the_kernel_reads_it() {
        let r = request(AF_INET6, 7, 40000, 40009);
        assert_eq!(r.len(), 16 + 56 + 4 + 16);
        assert_eq!(u32_at(&r, 0) as usize, r.len());
        assert_eq!(u16_at(&r, 4), SOCK_DIAG_BY_FAMILY);
        assert_eq!(u16_at(&r, 6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(u32_at(&r, 8), 7);
        assert_eq!(&r[16..20], &[AF_INET6, IPPROTO_TCP, 0, 0]);
        assert_eq!(u32_at(&r, 20), 0x1FFE);
        assert_eq!(u16_at(&r, 72), 20);
        assert_eq!(u16_at(&r, 74), INET_DIAG_REQ_BYTECODE);
        assert_eq!(&r[76..], &bytecode(40000, 40009));
    }

    fn header(len: usize, kind: u16, seq: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&(len as u32).to_ne_bytes());
        h.extend_from_slice(&kind.to_ne_bytes());
        h.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
        h.extend_from_slice(&seq.to_ne_bytes());
        h.extend_from_slice(&1234u32.to_ne_bytes());
        h
    }

    /// A socket message as the kernel writes it, with 8 bytes of attributes.
    fn sock(family: u8, state: u8, src: &[u8], sport: u16, dst: &[u8], dport: u16) -> Vec<u8> {
        let mut m = header(NLMSG_HDRLEN + DIAG_MSG_LEN + 8, SOCK_DIAG_BY_FAMILY, 1);
        m.extend_from_slice(&[family, state, 0, 0]);
        m.extend_from_slice(&sport.to_be_bytes());
        m.extend_from_slice(&dport.to_be_bytes());
        let mut a = [0u8; 32];
        a[..src.len()].copy_from_slice(src);
        a[16..16 + dst.len()].copy_from_slice(dst);
        m.extend_from_slice(&a);
        m.extend_from_slice(&[0u8; 12 + 20]); // if, cookie; expires .. inode
        m.extend_from_slice(&[5, 0, 8, 0, 0, 0, 0, 0]); // INET_DIAG_SHUTDOWN, padded
        m
    }

    fn done(seq: u32, status: i32) -> Vec<u8> {
        let mut m = header(NLMSG_HDRLEN + 4, NLMSG_DONE, seq);
        m.extend_from_slice(&status.to_ne_bytes());
        m
    }

    fn error(seq: u32, errno: i32) -> Vec<u8> {
        let mut m = header(NLMSG_HDRLEN + 4 + 16, NLMSG_ERROR, seq);
        m.extend_from_slice(&(-errno).to_ne_bytes());
        m.extend_from_slice(&[0u8; 16]);
        m
    }

    const LO: [u8; 4] = [127, 0, 0, 1];

    #[test]
    fn sockets_are_counted_like_table_lines() {
        let mut scan = PortScan::new(40000, 40009, &[]);
        let mut n = 0;
        let mut d = Vec::new();
        d.extend(sock(AF_INET, 10, &[0; 4], 40005, &[0; 4], 0)); // listening in the range
        d.extend(sock(AF_INET, 6, &LO, 40000, &LO, 8080)); // TIME_WAIT to 127.0.0.1:8080
        d.extend(sock(AF_INET, 1, &LO, 40001, &LO, 8080)); // ESTABLISHED
        d.extend(sock(AF_INET, 1, &LO, 40005, &LO, 50000)); // accepted on 40005: inbound
        assert!(!datagram(&d, 1, AF_INET, &mut scan, &mut n).unwrap());
        assert!(datagram(&done(1, 0), 1, AF_INET, &mut scan, &mut n).unwrap());
        let mut v6 = [0u8; 16];
        v6[10] = 0xff;
        v6[11] = 0xff;
        v6[12..].copy_from_slice(&LO);
        let d6 = sock(AF_INET6, 2, &v6, 40002, &v6, 8080); // mapped: joins 127.0.0.1:8080
        assert!(!datagram(&d6, 1, AF_INET6, &mut scan, &mut n).unwrap());
        scan.sort_spill();
        assert_eq!(n, 5);
        let top = scan.top(5);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].name(), "127.0.0.1:8080");
        assert_eq!(top[0].counts.total(), 3);
        assert_eq!((scan.inbound, scan.outbound, scan.listening_in_range), (1, 3, 1));
        assert_eq!(scan.pool_held(), 3);
    }

    #[test]
    fn errors_and_malformed_replies_are_errors() {
        let scan = || PortScan::new(40000, 40009, &[]);
        let run = |d: &[u8]| datagram(d, 1, AF_INET, &mut scan(), &mut 0);
        assert!(
            matches!(run(&error(1, 1)), Err(DiagError::Unavailable(e, Errno::EPERM)) if e.contains("EPERM"))
        );
        assert!(
            matches!(run(&error(1, 2)), Err(DiagError::Unavailable(e, Errno::ENOENT)) if e.contains("ENOENT"))
        );
        assert!(matches!(run(&error(1, 22)), Err(DiagError::Failed(e)) if e.contains("EINVAL")));
        assert!(matches!(run(&done(1, -16)), Err(DiagError::Failed(e)) if e.contains("EBUSY")));
        let ok = sock(AF_INET, 1, &LO, 40001, &LO, 8080);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (ok[..10].to_vec(), "trailing bytes"),
            (ok[..ok.len() - 1].to_vec(), "nlmsg_len"),
            ([ok.clone(), vec![0; 3]].concat(), "trailing bytes"),
            (header(8, SOCK_DIAG_BY_FAMILY, 1), "nlmsg_len 8"),
            (sock(AF_INET6, 1, &LO, 40001, &LO, 8080), "family 10"),
            (sock(AF_INET, 13, &LO, 40001, &LO, 8080), "not a TCP state"),
            (sock(AF_INET, 0, &LO, 40001, &LO, 8080), "not a TCP state"),
            (header(16, 99, 1), "message type 99"),
            (header(16, NLMSG_ERROR, 1), "without its error number"),
            (error(1, 0), "acknowledgement"),
            (done(2, 0), "sequence number 2"),
            (
                {
                    let mut m = header(NLMSG_HDRLEN + 40, SOCK_DIAG_BY_FAMILY, 1);
                    m.extend_from_slice(&[2; 40]);
                    m
                },
                "inet_diag_msg of 40 bytes",
            ),
        ];
        for (d, why) in cases {
            match run(&d) {
                Err(DiagError::Failed(e)) => assert!(e.contains(why), "{why}: {e}"),
                other => panic!("{why}: {other:?}"),
            }
        }
        // any bytes at all: an answer, never a panic
        let mut seed = 7u32;
        for len in 0..400 {
            let d: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = run(&d);
            let mut framed = header(NLMSG_HDRLEN + d.len(), SOCK_DIAG_BY_FAMILY, 1);
            framed.extend_from_slice(&d);
            let _ = run(&framed);
        }
    }

    /// The real kernel, when this process may use sock_diag: the dump ends and every
    /// socket it returns has its local port in the range asked for.
    #[test]
    fn the_running_kernel_answers_a_dump() {
        let mut scan = PortScan::new(1, 65535, &[]);
        match scan_sockets(1, 65535, &mut scan) {
            Ok(read) => {
                assert_eq!(read.len(), 2);
                assert_eq!(read[0].path, "netlink:tcp");
                let n: u64 = read.iter().map(|r| r.lines.unwrap()).sum();
                assert_eq!(n, scan.sockets);
            }
            Err(DiagError::Unavailable(why, _)) => eprintln!("sock_diag unavailable here: {why}"),
            Err(DiagError::Failed(e)) => panic!("{e}"),
        }
    }
}
