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
