//! Rule `tcp-buffers`. See [`DOC`].

use super::{Context, Outcome, Rule};

pub const DOC: &str = "TODO";

pub struct TcpBuffers;

impl Rule for TcpBuffers {
    fn id(&self) -> &'static str {
        "tcp-buffers"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, _ctx: &Context) -> Outcome {
        Outcome::default()
    }
}
