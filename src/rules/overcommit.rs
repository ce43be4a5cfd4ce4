//! Rule `overcommit`. See [`DOC`].

use super::{Context, Outcome, Rule};

pub const DOC: &str = "TODO";

pub struct Overcommit;

impl Rule for Overcommit {
    fn id(&self) -> &'static str {
        "overcommit"
    }

    fn keys(&self) -> &'static [&'static str] {
        &[
            "vm.overcommit_memory",
            "vm.overcommit_ratio",
            "vm.overcommit_kbytes",
        ]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, _ctx: &Context) -> Outcome {
        Outcome::default()
    }
}
