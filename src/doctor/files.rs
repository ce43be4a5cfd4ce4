//! `file-descriptors`: `fs.file-nr` allocated against `fs.file-max`. Warning at 80 %,
//! error at 95 % (ENFILE "Too many open files in system").

use super::{FileFacts, grade, percent};
use crate::rules::Code;
use crate::rules::{Finding, Severity};
use crate::units::grouped;

/// File handles allocated, free and the limit (`allocated 0 max`).
pub const NR_KEY: &str = "fs.file-nr";
/// The system-wide limit of file handles.
pub const MAX_KEY: &str = "fs.file-max";

pub const FILES_WARNING_PERCENT: u64 = 80;
pub const FILES_ERROR_PERCENT: u64 = 95;

/// `file-descriptors`: `fs.file-nr` allocated against `fs.file-max`.
pub fn check_files(files: Option<FileFacts>) -> Finding {
    let id = Code::FileDescriptors;
    let Some(FileFacts { allocated, max }) = files else {
        return Finding::new(
            Severity::Info,
            id,
            "fs.file-nr is absent: open files not checked.",
        );
    };
    let (a, m) = (allocated as u128, max as u128);
    let figures = format!(
        "{} allocated file handles (fs.file-nr) are {} of fs.file-max {}",
        grouped(a),
        percent(a, m),
        grouped(m)
    );
    let severity = grade(a, m, FILES_WARNING_PERCENT, FILES_ERROR_PERCENT);
    let message = if severity == Severity::Info {
        format!("{figures}.")
    } else {
        format!(
            "{figures}: at the limit, open(), socket() and accept() fail with ENFILE \"Too many open \
             files in system\". Fix: raise fs.file-max (sysctune plan sizes it from the connections) and \
             find what holds so many files."
        )
    };
    Finding::new(severity, id, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_thresholds() {
        let f = |a, m| check_files(Some(FileFacts { allocated: a, max: m })).severity;
        assert_eq!(f(799, 1000), Severity::Info);
        assert_eq!(f(800, 1000), Severity::Warning);
        assert_eq!(f(949, 1000), Severity::Warning);
        assert_eq!(f(950, 1000), Severity::Error);
        assert_eq!(f(3456, 9223372036854775807), Severity::Info);
        assert_eq!(check_files(None).severity, Severity::Info);
    }
}
