//! Rule `tcp-memory`. See [`DOC`].

use super::{Context, Outcome, Rule};

pub const DOC: &str = "TODO";

pub struct TcpMemory;

impl Rule for TcpMemory {
    fn id(&self) -> &'static str {
        "tcp-memory"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["net.ipv4.tcp_mem"]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, _ctx: &Context) -> Outcome {
        Outcome::default()
    }
}

pub fn per_conn_worst(rmem_default: u64, wmem_default: u64, control_block: u64) -> u64 {
    rmem_default + wmem_default + control_block
}

pub fn max_connections(high_pages: u64, page: u64, per_conn: u64) -> u64 {
    if per_conn == 0 {
        0
    } else {
        (high_pages as u128 * page as u128 / per_conn as u128) as u64
    }
}
