//! `tcp-memory`: sockstat `mem` (pages) against `net.ipv4.tcp_mem`.
//!
//! Warning at pressure, error at high ("out of memory -- consider tuning tcp_mem").
//! `tcp_mem` exists only in the host's network namespace: in a child namespace the check
//! is skipped with an info finding.
//!
//! Both figures are in the kernel's memory quantum, not always the page: on kernels
//! 4.10-5.19 with pages larger than 4 KiB, `SK_MEM_QUANTUM` was 4096 (commit bd68a2a854ad;
//! 6.0 restored the page), so there a "page" of tcp_mem and of sockstat `mem` is 4 KiB.

use super::percent;
use crate::rules::Code;
use crate::rules::{Finding, Severity};
use crate::units::human_pages;

/// The unit of tcp_mem and sockstat `mem`, in bytes: 4096 on kernels 4.10-5.19 whose page
/// is larger, else the page. A release without a parsable major.minor counts as outside
/// 4.10-5.19.
pub fn quantum(kernel: &str, page: u64) -> u64 {
    let mut parts = kernel.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(major), Some(minor)) if page > 4096 && ((4, 10)..=(5, 19)).contains(&(major, minor)) => 4096,
        _ => page,
    }
}

/// `tcp-memory`: sockstat `mem` (pages) against `tcp_mem` (pages).
pub fn check_tcp_memory(mem: Option<u64>, tcp_mem: Option<[u64; 3]>, page: u64) -> Finding {
    let id = Code::TcpMemory;
    let (Some(mem), Some([_, pressure, high])) = (mem, tcp_mem) else {
        return Finding::new(
            Severity::Info,
            id,
            if mem.is_none() {
                "/proc/net/sockstat could not be read: TCP memory not checked.".to_string()
            } else {
                "net.ipv4.tcp_mem is absent (it exists only in the host's network namespace, not in a \
                 container's): TCP memory not checked here; run sysctune doctor on the host."
                    .to_string()
            },
        );
    };
    let now = format!("TCP memory {}", human_pages(mem, page));
    let fix = "Fix: size tcp_mem and the default buffers for the connections (sysctune plan --profile \
               reverse-proxy), or spread them over more hosts.";
    // Judged against pressure once above it, else against high.
    let judged = if mem >= pressure && mem < high {
        pressure
    } else {
        high
    };
    let finding = if mem >= high {
        Finding::new(
            Severity::Error,
            id,
            format!(
                "{now} is at or above net.ipv4.tcp_mem high {}: sockets get no more buffer memory; the \
                 kernel drops data, resets connections and logs \"TCP: out of memory -- consider tuning \
                 tcp_mem\" (older kernels: \"Out of socket memory\"). {fix}",
                human_pages(high, page)
            ),
        )
    } else if mem >= pressure {
        Finding::new(
            Severity::Warning,
            id,
            format!(
                "{now} is at or above net.ipv4.tcp_mem pressure {}: the kernel is shrinking socket \
                 buffers; at high {} ({} of it used now) it runs out of TCP memory (\"out of memory -- \
                 consider tuning tcp_mem\"). {fix}",
                human_pages(pressure, page),
                human_pages(high, page),
                percent(mem as u128, high as u128)
            ),
        )
    } else {
        Finding::new(
            Severity::Info,
            id,
            format!(
                "{now} is {} of net.ipv4.tcp_mem high {}.",
                percent(mem as u128, high as u128),
                human_pages(high, page),
            ),
        )
    };
    finding.measured(Some("net.ipv4.tcp_mem"), mem, judged, "pages")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quantum_is_4_kib_on_64_kib_page_kernels_4_10_to_5_19() {
        assert_eq!(quantum("5.15.0-91-generic", 65536), 4096);
        assert_eq!(quantum("4.10.0", 65536), 4096);
        assert_eq!(quantum("5.19.17", 16384), 4096);
        assert_eq!(quantum("4.9.337", 65536), 65536);
        assert_eq!(quantum("6.1.0-18-arm64", 65536), 65536);
        assert_eq!(quantum("5.15.0", 4096), 4096);
        assert_eq!(quantum("unknown", 65536), 65536);
        assert_eq!(quantum("5", 65536), 65536);
    }

    #[test]
    fn tcp_memory_thresholds() {
        let t = Some([100, 200, 300]);
        assert_eq!(check_tcp_memory(Some(199), t, 4096).severity, Severity::Info);
        let w = check_tcp_memory(Some(200), t, 4096);
        assert_eq!(w.severity, Severity::Warning);
        assert!(
            w.message.contains("pressure 200 pages = 800 KiB"),
            "{}",
            w.message
        );
        let e = check_tcp_memory(Some(300), t, 4096);
        assert_eq!(e.severity, Severity::Error);
        assert!(e.message.contains("300 pages = 1.2 MiB"), "{}", e.message);
        assert!(e.message.contains("out of memory -- consider tuning tcp_mem"));
        assert!(e.message.contains("Out of socket memory"));
        let skip = check_tcp_memory(Some(300), None, 4096);
        assert_eq!(skip.severity, Severity::Info);
        assert!(skip.message.contains("absent"));
    }
}
