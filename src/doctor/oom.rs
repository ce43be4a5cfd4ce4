//! `oom`: MemAvailable against MemTotal, a risk of the OOM killer only without swap.
//! Warning below 10 %, error below 5 %; with swap, a low MemAvailable pages out instead
//! of killing at once: info only.

use super::percent;
use crate::rules::Code;
use crate::rules::{Finding, Severity};
use crate::units::human_bytes;

pub const OOM_WARNING_BELOW_PERCENT: u64 = 10;
pub const OOM_ERROR_BELOW_PERCENT: u64 = 5;

/// `oom`: MemAvailable against MemTotal; a risk of the OOM killer only without swap.
pub fn check_oom(available: Option<u64>, total: u64, swap: u64) -> Finding {
    let id = Code::Oom;
    let Some(available) = available else {
        return Finding::new(
            Severity::Info,
            id,
            "/proc/meminfo has no MemAvailable (kernels before 3.14): the OOM risk is not checked.",
        );
    };
    let (a, t) = (available as u128, total as u128);
    let figures = format!(
        "MemAvailable {} is {} of MemTotal {}",
        human_bytes(a),
        percent(a, t),
        human_bytes(t)
    );
    if swap > 0 {
        return Finding::new(
            Severity::Info,
            id,
            format!(
                "{figures}, with {} of swap to page out to before the OOM killer acts.",
                human_bytes(swap as u128)
            ),
        );
    }
    let below = |p: u64| a * 100 < t * p as u128;
    let fix = "Fix: find the process that grows (ps -eo rss,comm --sort=-rss | head) and reduce its \
               memory, add RAM, or add swap so bursts page out instead of killing.";
    if below(OOM_ERROR_BELOW_PERCENT) {
        Finding::new(
            Severity::Error,
            id,
            format!(
                "{figures} and there is no swap: below {OOM_ERROR_BELOW_PERCENT}% the OOM killer is about \
                 to kill a process. {fix}"
            ),
        )
    } else if below(OOM_WARNING_BELOW_PERCENT) {
        Finding::new(
            Severity::Warning,
            id,
            format!(
                "{figures} and there is no swap: under {OOM_WARNING_BELOW_PERCENT}%, a burst will wake the \
                 OOM killer. {fix}"
            ),
        )
    } else {
        Finding::new(Severity::Info, id, format!("{figures}; no swap."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_thresholds() {
        let total = 1000 << 20;
        assert_eq!(check_oom(Some(100 << 20), total, 0).severity, Severity::Info);
        assert_eq!(
            check_oom(Some((100 << 20) - 1), total, 0).severity,
            Severity::Warning
        );
        assert_eq!(check_oom(Some(50 << 20), total, 0).severity, Severity::Warning);
        let e = check_oom(Some((50 << 20) - 1), total, 0);
        assert_eq!(e.severity, Severity::Error);
        assert!(e.message.contains("OOM killer"));
        // swap: info only
        assert_eq!(check_oom(Some(1), total, 1 << 30).severity, Severity::Info);
        assert_eq!(check_oom(None, total, 0).severity, Severity::Info);
        assert_eq!(check_oom(Some(0), 0, 0).severity, Severity::Info);
    }
}
