//! Rule `file-descriptors`. See [`DOC`].

use super::{Context, Outcome, Rule};

pub const DOC: &str = "TODO";

pub struct FileDescriptors;

impl Rule for FileDescriptors {
    fn id(&self) -> &'static str {
        "file-descriptors"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["fs.file-max", "fs.nr_open"]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, _ctx: &Context) -> Outcome {
        Outcome::default()
    }
}
