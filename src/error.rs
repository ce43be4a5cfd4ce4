//! One error type for the whole tool. Every error is exit code 2 and its message says
//! what was wrong, where (file, line, key, field) and what would be valid.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A profile, a `--set`, a flag or a key given by the user is not valid.
    #[error("{0}")]
    Input(String),
    /// Host data under `--root` could not be read or parsed.
    #[error("{path}: {message}")]
    Host { path: PathBuf, message: String },
    /// A write was refused or failed (after rollback, for apply).
    #[error("{0}")]
    Write(String),
}

impl Error {
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }

    pub fn host(path: &Path, message: impl Into<String>) -> Self {
        Error::Host {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub fn io(path: &Path, err: &std::io::Error) -> Self {
        Error::host(path, describe_io(err))
    }
}

/// io::Error's Display adds "(os error N)"; operators want the plain reason.
pub fn describe_io(err: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match err.kind() {
        NotFound => "no such file".to_string(),
        PermissionDenied => "permission denied".to_string(),
        _ => {
            let s = err.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
