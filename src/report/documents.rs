//! The error document, written by `main` for any command run with `--format json`: field
//! names and order are the contract with scripts, and `schema` comes first, as in every
//! sysctune document.

use serde::Serialize;

pub const ERROR_SCHEMA: &str = "sysctune/error/v1";

/// With `--format json`, an error is a document on stdout too (and the message on stderr).
#[derive(Serialize)]
pub struct ErrorDoc<'a> {
    pub schema: &'static str,
    pub error: &'a str,
    pub exit: i32,
}
