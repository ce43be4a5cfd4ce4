//! Rule `swappiness`. See [`DOC`].

use super::{Context, Outcome, Rule};

pub const DOC: &str = "TODO";

pub struct Swappiness;

impl Rule for Swappiness {
    fn id(&self) -> &'static str {
        "swappiness"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["vm.swappiness"]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, _ctx: &Context) -> Outcome {
        Outcome::default()
    }
}
