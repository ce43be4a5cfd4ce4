//! `commit`: Committed_AS against CommitLimit, enforced only when
//! `vm.overcommit_memory = 2`. Warning at 90 %, error above 100 % (allocations are
//! refused).

use super::{at_least, percent};
use crate::rules::Code;
use crate::rules::{Finding, Severity};
use crate::units::human_bytes;

/// The overcommit mode: only mode 2 (strict) enforces CommitLimit.
pub const MODE_KEY: &str = "vm.overcommit_memory";

pub const COMMIT_WARNING_PERCENT: u64 = 90;

/// `commit`: Committed_AS against CommitLimit, enforced only in strict mode.
pub fn check_commit(mode: Option<u64>, committed: u64, limit: u64) -> Finding {
    let id = Code::Commit;
    let (c, l) = (committed as u128, limit as u128);
    let figures = format!(
        "Committed_AS {} is {} of CommitLimit {}",
        human_bytes(c),
        percent(c, l),
        human_bytes(l)
    );
    if mode != Some(2) {
        let why = match mode {
            Some(0) => "in heuristic mode (vm.overcommit_memory = 0)".to_string(),
            Some(1) => "in always mode (vm.overcommit_memory = 1)".to_string(),
            Some(m) => format!("with vm.overcommit_memory = {m}"),
            None => "(vm.overcommit_memory is absent)".to_string(),
        };
        return Finding::new(Severity::Info, id, format!("{figures}, not enforced {why}."));
    }
    let fix = "Fix: add swap, raise vm.overcommit_ratio (sysctune plan with [memory] overcommit = \
               \"strict\" and commit_target), or use heuristic mode (vm.overcommit_memory = 0).";
    if c > l {
        Finding::new(
            Severity::Error,
            id,
            format!(
                "strict overcommit (vm.overcommit_memory = 2): {figures}: the kernel refuses allocations \
                 now (malloc, mmap and fork fail with ENOMEM). {fix}"
            ),
        )
    } else if at_least(c, l, COMMIT_WARNING_PERCENT) {
        Finding::new(
            Severity::Warning,
            id,
            format!(
                "strict overcommit (vm.overcommit_memory = 2): {figures}: {} left before allocations \
                 fail with ENOMEM. {fix}",
                human_bytes(l - c)
            ),
        )
    } else {
        Finding::new(
            Severity::Info,
            id,
            format!("strict overcommit (vm.overcommit_memory = 2): {figures}."),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_thresholds() {
        let gib = 1u64 << 30;
        // the article: CommitLimit 517584 kB, Committed_AS 3306488 kB
        let e = check_commit(Some(2), 3306488 * 1024, 517584 * 1024);
        assert_eq!(e.severity, Severity::Error);
        assert!(e.message.contains("638.8%"), "{}", e.message);
        assert_eq!(
            check_commit(Some(2), 10 * gib, 10 * gib).severity,
            Severity::Warning
        );
        assert_eq!(
            check_commit(Some(2), 9 * gib, 10 * gib).severity,
            Severity::Warning
        );
        assert_eq!(
            check_commit(Some(2), 9 * gib - 1, 10 * gib).severity,
            Severity::Info
        );
        // not enforced outside strict mode
        assert_eq!(check_commit(Some(0), 30 * gib, 10 * gib).severity, Severity::Info);
        assert_eq!(check_commit(None, 30 * gib, 10 * gib).severity, Severity::Info);
    }
}
