//! `sysctune recommend`: which built-in profile fits what this host is doing, from the
//! workload rather than the hardware (sockstat, listening sockets, connections in and
//! out, TIME_WAIT per destination from /proc/net/tcp{,6}), with the `--set` overrides
//! that adapt it and the evidence. Read-only; the decision is [`decide`], pure.
//!
//! The decision, first match wins:
//! 1. **batch-client**: the busiest destination holds at least [`OUTBOUND_MIN`] local
//!    ports (TIME_WAIT + open) and outbound connections are at least the inbound ones: a
//!    client calling a service. `outbound.new_per_second` = ceil(TIME_WAIT / 60) (each
//!    closed connection stays 60 s), `outbound.concurrent` = its open connections.
//! 2. **database**: a database port listens (PostgreSQL, MySQL, ...) and fewer than
//!    [`PROXY_MIN`] connections are inbound.
//! 3. **reverse-proxy**: at least [`PROXY_MIN`] inbound connections: many held clients;
//!    `average_memory = "observed"` once sockstat has enough sockets to measure it.
//! 4. **web-server**: a web port listens, or there are inbound connections.
//! 5. Nothing to go on: no profile.
//!
//! A count the profile would plan below what the host holds now is raised with a `--set`
//! (twice the current count, rounded up to a hundred: room to grow).

use serde::Serialize;

use crate::error::Result;
use crate::escape::safe;
use crate::host::{self, Root, tcp_table};
use crate::rules::demand::OBSERVED_MIN_SOCKETS;
use crate::rules::port_range;
use crate::units::grouped;

pub const SCHEMA: &str = "sysctune/recommend/v1";
/// Ports the busiest destination must hold for a host to count as a client of it.
pub const OUTBOUND_MIN: u64 = 50;
/// Inbound connections from which a host holds "many" clients.
pub const PROXY_MIN: u64 = 10_000;
const TABLES_ABSENT: &str = "/proc/net/tcp and tcp6 are absent: connections, listeners and destinations are unknown, only sockstat was read";
const DB_PORTS: &[u16] = &[5432, 3306, 1521, 1433, 27017, 6379, 9042, 26257];
const WEB_PORTS: &[u16] = &[80, 443, 8080, 8443];

#[derive(Clone, Debug, Serialize)]
pub struct Busiest {
    pub destination: String,
    pub time_wait: u64,
    pub open: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Evidence {
    /// sockstat `TCP: inuse`, `tw`, `mem` (pages); null without sockstat.
    pub tcp_inuse: Option<u64>,
    pub tcp_time_wait: Option<u64>,
    pub tcp_mem_pages: Option<u64>,
    pub listening_ports: Vec<u16>,
    /// Connections on a listening port.
    pub inbound: u64,
    /// Connections holding an ephemeral port for a destination.
    pub outbound: u64,
    pub destinations: u64,
    pub busiest: Option<Busiest>,
    /// The tables read (`/proc/net/tcp`, `/proc/net/tcp6`); lines null when absent.
    pub tables: Vec<tcp_table::TableRead>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Recommendation {
    pub schema: &'static str,
    /// A built-in profile name, or null when the host gives nothing to go on.
    pub profile: Option<String>,
    /// `FIELD=VALUE` overrides for `--set`.
    pub sets: Vec<String>,
    /// The plan command to run next, or null.
    pub command: Option<String>,
    /// Why, one line each.
    pub reasons: Vec<String>,
    pub evidence: Evidence,
}

/// Read the evidence under `root` and decide.
pub fn run(root: &Root) -> Result<Recommendation> {
    let facts = host::read_facts(root, &[])?;
    let (lo, hi) = port_range::current_range(&facts).unwrap_or((32768, 60999));
    let mut scan = tcp_table::PortScan::new(lo, hi, &port_range::reserved(&facts));
    let tables = tcp_table::scan_tables(root, &mut scan)?;
    let busiest = scan.top(1).first().map(|d| Busiest {
        destination: d.name(),
        time_wait: d.counts.time_wait as u64,
        open: d.counts.total() - d.counts.time_wait as u64,
    });
    let evidence = Evidence {
        tcp_inuse: facts.sockstat.as_ref().map(|s| s.tcp_inuse),
        tcp_time_wait: facts.sockstat.as_ref().map(|s| s.tcp_tw),
        tcp_mem_pages: facts.sockstat.as_ref().map(|s| s.tcp_mem),
        listening_ports: scan.listening_ports(),
        inbound: scan.inbound,
        outbound: scan.outbound,
        destinations: scan.destinations() as u64,
        busiest,
        tables,
    };
    Ok(decide(evidence))
}

fn room(n: u64) -> u64 {
    n.saturating_mul(2).div_ceil(100).saturating_mul(100)
}

/// The decision (see the module documentation). Pure.
pub fn decide(e: Evidence) -> Recommendation {
    let mut reasons = Vec::new();
    let mut sets = Vec::new();
    let listens = |ports: &[u16]| -> Vec<u16> {
        e.listening_ports
            .iter()
            .copied()
            .filter(|p| ports.contains(p))
            .collect()
    };
    let list = |ports: &[u16]| ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    let held = e.busiest.as_ref().map_or(0, |b| b.time_wait + b.open);
    let profile = if held >= OUTBOUND_MIN && e.outbound >= e.inbound {
        let b = e.busiest.as_ref().expect("held > 0");
        reasons.push(format!(
            "the busiest destination {} holds {} local ports ({} in TIME_WAIT, {} open), and outbound \
             connections ({}) are at least the inbound ones ({}): a client calling a service",
            safe(&b.destination),
            grouped(held as u128),
            grouped(b.time_wait as u128),
            grouped(b.open as u128),
            grouped(e.outbound as u128),
            grouped(e.inbound as u128)
        ));
        let rate = b.time_wait.div_ceil(60).max(1);
        reasons.push(format!(
            "{} in TIME_WAIT for 60 s each: about {rate} new connection(s) per second to it",
            grouped(b.time_wait as u128)
        ));
        sets.push(format!("outbound.new_per_second={rate}"));
        if b.open > 0 {
            sets.push(format!("outbound.concurrent={}", b.open));
        }
        "batch-client"
    } else if !listens(DB_PORTS).is_empty() && e.inbound < PROXY_MIN {
        reasons.push(format!(
            "a database port listens ({}), with {} inbound connections",
            list(&listens(DB_PORTS)),
            grouped(e.inbound as u128)
        ));
        if room(e.inbound) > 2000 {
            sets.push(format!("connections.concurrent={}", room(e.inbound)));
            sets.push(format!("connections.processes={}", room(e.inbound)));
        }
        "database"
    } else if e.inbound >= PROXY_MIN {
        reasons.push(format!(
            "{} inbound connections (at least {}): many clients held at once",
            grouped(e.inbound as u128),
            grouped(PROXY_MIN as u128)
        ));
        "reverse-proxy"
    } else if !listens(WEB_PORTS).is_empty() || e.inbound > 0 {
        if listens(WEB_PORTS).is_empty() {
            reasons.push(format!(
                "{} inbound connections on listening ports {}",
                grouped(e.inbound as u128),
                list(&e.listening_ports)
            ));
        } else {
            reasons.push(format!(
                "a web port listens ({}), with {} inbound connections",
                list(&listens(WEB_PORTS)),
                grouped(e.inbound as u128)
            ));
        }
        if room(e.inbound) > 20_000 {
            sets.push(format!("connections.concurrent={}", room(e.inbound)));
        }
        "web-server"
    } else {
        if e.tables.iter().all(|t| t.lines.is_none()) {
            reasons.push(TABLES_ABSENT.to_string());
        }
        reasons.push(
            "nothing to go on: no inbound connections, no destination holding many local ports; \
             run it under the real load, or pick a profile with `sysctune profiles`"
                .to_string(),
        );
        return Recommendation {
            schema: SCHEMA,
            profile: None,
            sets,
            command: None,
            reasons,
            evidence: e,
        };
    };
    if profile != "batch-client"
        && let Some(n) = e.tcp_inuse
        && n >= OBSERVED_MIN_SOCKETS
    {
        sets.push("connections.average_memory=observed".to_string());
        reasons.push(format!(
            "{} TCP sockets in use: enough to measure their average memory (average_memory = \"observed\")",
            grouped(n as u128)
        ));
    }
    if e.tables.iter().all(|t| t.lines.is_none()) {
        reasons.push(TABLES_ABSENT.to_string());
    }
    let mut command = format!("sysctune plan --profile {profile}");
    for s in &sets {
        command.push_str(&format!(" --set {s}"));
    }
    Recommendation {
        schema: SCHEMA,
        profile: Some(profile.to_string()),
        sets,
        command: Some(command),
        reasons,
        evidence: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busiest(tw: u64, open: u64) -> Option<Busiest> {
        Some(Busiest {
            destination: "10.0.0.5:8080".into(),
            time_wait: tw,
            open,
        })
    }

    #[test]
    fn a_client_bursting_to_one_destination_is_a_batch_client() {
        let r = decide(Evidence {
            busiest: busiest(24_000, 150),
            outbound: 24_150,
            inbound: 3,
            listening_ports: vec![22],
            ..Default::default()
        });
        assert_eq!(r.profile.as_deref(), Some("batch-client"));
        assert_eq!(r.sets, ["outbound.new_per_second=400", "outbound.concurrent=150"]);
        assert_eq!(
            r.command.as_deref(),
            Some(
                "sysctune plan --profile batch-client --set outbound.new_per_second=400 --set outbound.concurrent=150"
            )
        );
    }

    #[test]
    fn listeners_and_inbound_pick_the_server_profiles() {
        let db = decide(Evidence {
            listening_ports: vec![22, 5432],
            inbound: 3000,
            tcp_inuse: Some(3100),
            ..Default::default()
        });
        assert_eq!(db.profile.as_deref(), Some("database"));
        assert_eq!(
            db.sets,
            [
                "connections.concurrent=6000",
                "connections.processes=6000",
                "connections.average_memory=observed"
            ]
        );
        let proxy = decide(Evidence {
            listening_ports: vec![443],
            inbound: 400_000,
            tcp_inuse: Some(400_100),
            ..Default::default()
        });
        assert_eq!(proxy.profile.as_deref(), Some("reverse-proxy"));
        let web = decide(Evidence {
            listening_ports: vec![80, 443],
            inbound: 120,
            tcp_inuse: Some(200),
            ..Default::default()
        });
        assert_eq!(web.profile.as_deref(), Some("web-server"));
        assert!(web.sets.is_empty());
        let idle = decide(Evidence::default());
        assert_eq!(idle.profile, None);
        assert!(idle.reasons.iter().any(|r| r.contains("nothing to go on")));
    }
}
