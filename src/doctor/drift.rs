//! Plan drift, as `sysctune status` judges it, in doctor's facts and metrics: whether the
//! last apply still holds (live values, the drop-in and the boot winner agree, and the
//! applied profile recommends what is applied). Not a finding: drift is a change pending,
//! not a failure about to happen, and doctor's exit code stays about the latter
//! (`sysctune status` exits 1 on drift).
//!
//! A state directory that cannot be read (a garbled `applied.conf`) does not stop doctor:
//! the reason is in `error`, and the metrics say the status is unknown.

use serde::Serialize;

use crate::cli::StateArgs;
use crate::host::Root;
use crate::status::Status;

/// Drifting keys named in the facts, at most (the count is always whole).
pub const DRIFT_KEYS_MAX: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DriftFacts {
    /// The profile of the last apply that changed something; `null` when sysctune applied
    /// nothing here (or the state could not be read).
    pub profile: Option<String>,
    /// When it was applied, `2026-12-01T21:45:00Z`, and as seconds since the epoch.
    pub time: Option<String>,
    pub timestamp: Option<u64>,
    /// Keys `status` compares (the drop-in's, those set live, the profile's).
    pub keys: u64,
    /// Keys out of sync.
    pub drifting: u64,
    /// Their names, the first [`DRIFT_KEYS_MAX`].
    pub drifting_keys: Vec<String>,
    /// The drop-in is what the applied profile writes on this host now (`null` when it
    /// could not be planned, or nothing was applied).
    pub dropin_current: Option<bool>,
    /// `status` would exit 0.
    pub in_sync: bool,
    /// Why the status could not be read; `null` when it was.
    pub error: Option<String>,
}

/// Nothing applied: in sync, as `status` says.
impl Default for DriftFacts {
    fn default() -> Self {
        DriftFacts {
            profile: None,
            time: None,
            timestamp: None,
            keys: 0,
            drifting: 0,
            drifting_keys: Vec::new(),
            dropin_current: None,
            in_sync: true,
            error: None,
        }
    }
}

/// The facts of a `status`.
pub fn from_status(s: &Status) -> DriftFacts {
    let drifting: Vec<&str> = s
        .keys
        .iter()
        .filter(|k| !k.drift.is_empty())
        .map(|k| k.key.as_str())
        .collect();
    let time = s.applied.as_ref().map(|a| a.time.clone());
    DriftFacts {
        profile: s.applied.as_ref().map(|a| a.profile.clone()),
        timestamp: time.as_deref().and_then(crate::state::parse_utc),
        time,
        keys: s.keys.len() as u64,
        drifting: drifting.len() as u64,
        drifting_keys: drifting
            .iter()
            .take(DRIFT_KEYS_MAX)
            .map(|k| k.to_string())
            .collect(),
        dropin_current: s.dropin.as_ref().and_then(|d| d.current),
        in_sync: s.in_sync,
        error: None,
    }
}

/// `status` under `root` with the state in `state_dir`, as facts.
pub fn read(root: &Root, state_dir: &str) -> DriftFacts {
    let args = StateArgs {
        state_dir: state_dir.to_string(),
        lock_timeout: 0,
    };
    match crate::status::status(root, &args) {
        Ok(s) => from_status(&s),
        Err(e) => DriftFacts {
            in_sync: false,
            error: Some(e.to_string()),
            ..DriftFacts::default()
        },
    }
}

/// The facts line of the text report: `None` when nothing was applied.
pub fn line(d: &DriftFacts) -> Option<String> {
    if let Some(e) = &d.error {
        return Some(format!("unknown: {e}"));
    }
    let profile = d.profile.as_ref()?;
    let when = d.time.as_deref().unwrap_or("at an unknown time");
    let state = if d.in_sync {
        "in sync".to_string()
    } else if d.drifting > 0 {
        let mut names = d.drifting_keys.join(", ");
        if d.drifting > d.drifting_keys.len() as u64 {
            names.push_str(", …");
        }
        format!("{} of {} keys out of sync ({names})", d.drifting, d.keys)
    } else {
        "out of sync (see sysctune status)".to_string()
    };
    Some(format!("profile {profile} applied {when}: {state}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{AppliedSummary, KeyStatus};

    fn key(name: &str, drift: &[&str]) -> KeyStatus {
        KeyStatus {
            key: name.into(),
            live: Some("1".into()),
            dropin: Some("1".into()),
            boot: None,
            recommended: None,
            drift: drift.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn facts_of_a_status() {
        let mut keys = vec![key("net.ipv4.tcp_tw_reuse", &[])];
        for i in 0..25 {
            keys.push(key(
                &format!("net.k{i:02}"),
                &["live 2 differs from the drop-in's 1"],
            ));
        }
        let s = Status {
            schema: crate::status::SCHEMA,
            applied: Some(AppliedSummary {
                profile: "batch-client".into(),
                command: "sysctune apply --profile batch-client".into(),
                time: "2026-12-01T21:45:00Z".into(),
                netns: None,
            }),
            dropin: None,
            keys,
            in_sync: false,
            notes: Vec::new(),
        };
        let d = from_status(&s);
        assert_eq!(d.timestamp, Some(1_796_161_500));
        assert_eq!((d.keys, d.drifting), (26, 25));
        assert_eq!(d.drifting_keys.len(), DRIFT_KEYS_MAX);
        assert_eq!(d.drifting_keys[0], "net.k00");
        let l = line(&d).unwrap();
        assert!(l.starts_with(
            "profile batch-client applied 2026-12-01T21:45:00Z: 25 of 26 keys out of sync (net.k00, "
        ));
        assert!(l.ends_with("net.k19, …)"), "{l}");
    }

    #[test]
    fn nothing_applied() {
        assert_eq!(line(&DriftFacts::default()), None);
        let e = DriftFacts {
            error: Some("applied.conf line 3: bad".into()),
            ..DriftFacts::default()
        };
        assert_eq!(line(&e).unwrap(), "unknown: applied.conf line 3: bad");
    }
}
