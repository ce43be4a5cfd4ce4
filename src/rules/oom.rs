//! Rule `oom`. See [`DOC`].

use super::{Context, Outcome, Rule};

pub const DOC: &str = "TODO";

pub struct Oom;

impl Rule for Oom {
    fn id(&self) -> &'static str {
        "oom"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["vm.panic_on_oom", "kernel.panic"]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, _ctx: &Context) -> Outcome {
        Outcome::default()
    }
}
