//! The commands sysctune suggests, reproduced from the invocation and shell-quoted, so the
//! line an operator copies does what the plan showed: the same root, the profile as given
//! (a path stays a path), every `--set`, `--only`, `--dropin`, `--state-dir`.

use std::path::Path;

use crate::apply::DEFAULT_STATE_DIR;
use crate::plan::DEFAULT_DROPIN;

pub use crate::shell::shell_quote;

/// A sysctune command line being built.
pub struct Command {
    words: Vec<String>,
}

impl Command {
    /// `sysctune [--root ROOT] VERB`: the root only when it is not `/`.
    pub fn new(root: Option<&Path>, verb: &str) -> Self {
        let mut words = vec!["sysctune".to_string()];
        if let Some(r) = root.filter(|r| *r != Path::new("/")) {
            words.push("--root".into());
            words.push(r.display().to_string());
        }
        words.push(verb.into());
        Command { words }
    }

    pub fn arg(mut self, flag: &str, value: &str) -> Self {
        self.words.push(flag.into());
        self.words.push(value.into());
        self
    }

    pub fn args<'a>(mut self, flag: &str, values: impl IntoIterator<Item = &'a String>) -> Self {
        for v in values {
            self = self.arg(flag, v);
        }
        self
    }

    pub fn flag(mut self, flag: &str, on: bool) -> Self {
        if on {
            self.words.push(flag.into());
        }
        self
    }

    pub fn dropin(self, dropin: &str) -> Self {
        if dropin == DEFAULT_DROPIN {
            self
        } else {
            self.arg("--dropin", dropin)
        }
    }

    pub fn state_dir(self, dir: &str) -> Self {
        if dir == DEFAULT_STATE_DIR {
            self
        } else {
            self.arg("--state-dir", dir)
        }
    }

    pub fn render(&self) -> String {
        self.words
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The apply of a plan made with these arguments.
pub fn apply(root: Option<&Path>, a: &crate::cli::PlanArgs) -> String {
    Command::new(root, "apply")
        .arg("--profile", &a.profile)
        .args("--set", &a.sets)
        .args("--only", &a.only)
        .dropin(&a.dropin)
        .state_dir(&a.state_dir)
        .args("--allow-key", &a.allow_keys)
        .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_through_a_shell() {
        for w in [
            "plain",
            "net.ipv4.*",
            "it's",
            "a b",
            "",
            "$(id)",
            "sysctl.x=\"1 2\"",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(w)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), w);
        }
    }
}
