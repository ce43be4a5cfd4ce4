//! Rule `port-range`. See [`DOC`].

use super::{Context, Outcome, Rule};

pub const DOC: &str = "TODO";

pub struct PortRange;

impl Rule for PortRange {
    fn id(&self) -> &'static str {
        "port-range"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse"]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, _ctx: &Context) -> Outcome {
        Outcome::default()
    }
}

pub const TIME_WAIT_SECONDS: u64 = 60;

pub fn available(lo: u32, hi: u32, _reserved: &[(u32, u32)]) -> u64 {
    (hi - lo + 1) as u64
}

pub fn max_new_per_second(available: u64) -> u64 {
    available / 60
}
