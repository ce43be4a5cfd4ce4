//! `sysctune profiles`: the built-in profiles as a list (text, or the
//! `sysctune/profiles/v1` document), and one profile as TOML (`profiles show NAME`).

use serde::Serialize;

use crate::error::Result;
use crate::profile::{self, Resolved};

pub const SCHEMA: &str = "sysctune/profiles/v1";

/// `profiles --format json`, with `schema` first as in every sysctune document.
#[derive(Serialize)]
pub struct Document {
    pub schema: &'static str,
    pub profiles: Vec<Entry>,
}

#[derive(Serialize)]
pub struct Entry {
    pub name: String,
    pub description: String,
}

impl Document {
    /// Every built-in profile, in the order they are listed, with its description.
    pub fn builtin() -> Self {
        Document {
            schema: SCHEMA,
            profiles: profile::BUILTIN
                .iter()
                .map(|(name, _)| Entry {
                    name: name.to_string(),
                    description: profile::load(name, &[])
                        .ok()
                        .and_then(|p| p.description)
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// One profile a line: its name and description.
pub fn text(doc: &Document) -> String {
    let w = doc.profiles.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let mut out = String::from("Built-in profiles (sysctune profiles show NAME prints one as TOML):\n");
    for p in &doc.profiles {
        out.push_str(&format!("  {:w$}  {}\n", p.name, p.description));
    }
    out
}

/// `profiles show NAME`: the built-in's TOML as shipped, and where every field is explained.
pub fn source(toml: &str) -> String {
    format!("{toml}\n# Every field, with its unit and default: sysctune explain profile\n")
}

/// `profiles show NAME --resolved`: the chain of `extends` and the merged TOML. A profile
/// may be a file of anyone's, so its text is escaped.
pub fn resolved(name: &str, r: &Resolved) -> Result<String> {
    let text = format!("# {name}, resolved: {}\n{}", r.chain.join(" → "), r.to_toml()?);
    Ok(super::escape::safe_lines(&text).into_owned())
}
