//! The JSON documents that are not a library type of their own (`profiles`, errors), as
//! typed structs: field names and order are the contract with scripts, and `schema` comes
//! first in each, as in every sysctune document.

use serde::Serialize;

pub const PROFILES_SCHEMA: &str = "sysctune/profiles/v1";
pub const ERROR_SCHEMA: &str = "sysctune/error/v1";

#[derive(Serialize)]
pub struct ProfilesDoc {
    pub schema: &'static str,
    pub profiles: Vec<ProfileEntry>,
}

#[derive(Serialize)]
pub struct ProfileEntry {
    pub name: String,
    pub description: String,
}

/// With `--format json`, an error is a document on stdout too (and the message on stderr).
#[derive(Serialize)]
pub struct ErrorDoc<'a> {
    pub schema: &'static str,
    pub error: &'a str,
    pub exit: i32,
}
