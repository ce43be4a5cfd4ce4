//! `sysctune status`: what the last apply set (profile, time, drop-in, namespace), and for
//! each key sysctune manages or has set, the live value, the drop-in's, the one that wins
//! at boot, and what the applied profile recommends now, with drift marked. What
//! `tuned-adm verify` should have been: which key, which file, why.

use serde::Serialize;

use crate::apply;
use crate::cli::{PlanArgs, StateArgs};
use crate::error::Result;
use crate::host::{self, Root};
use crate::plan::Plan;
use crate::sysctl_d::Assignment;

pub const SCHEMA: &str = "sysctune/status/v1";

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub schema: &'static str,
    /// The last apply that changed something; null when sysctune applied nothing here.
    pub applied: Option<AppliedSummary>,
    pub dropin: Option<DropinStatus>,
    pub keys: Vec<KeyStatus>,
    /// Live, boot and the drop-in agree, and the profile recommends what is applied.
    pub in_sync: bool,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AppliedSummary {
    pub profile: String,
    /// The apply that did it, as a command to run again.
    pub command: String,
    pub time: String,
    pub netns: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DropinStatus {
    pub path: String,
    /// `absent`, `sysctune` (written by sysctune) or `foreign` (another header: edited or
    /// replaced by hand).
    pub state: &'static str,
    /// The drop-in is what the applied profile writes on this host now (null when the
    /// profile could not be planned).
    pub current: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct KeyStatus {
    pub key: String,
    pub live: Option<String>,
    /// The value in sysctune's drop-in, if it holds the key.
    pub dropin: Option<String>,
    /// The assignment that wins at boot (file and line), across every sysctl.d file.
    pub boot: Option<Assignment>,
    /// What the applied profile recommends now.
    pub recommended: Option<String>,
    /// Why the key is out of sync; empty when it is not.
    pub drift: Vec<String>,
}

impl Status {
    /// Drift needs attention.
    pub fn exit(&self) -> crate::exit::Exit {
        crate::exit::Exit::attention_if(!self.in_sync)
    }
}

/// The command that reproduces an apply, shell-quoted.
pub fn apply_command(root: &Root, applied: &crate::state::Applied, state_dir: &str) -> String {
    crate::hint::Command::new(Some(root.path()), "apply")
        .arg("--profile", &applied.spec)
        .args("--set", &applied.sets)
        .args("--only", &applied.only)
        .dropin(&applied.dropin)
        .state_dir(state_dir)
        .render()
}

pub fn status(root: &Root, args: &StateArgs) -> Result<Status> {
    let paths = apply::Paths::new(crate::plan::DEFAULT_DROPIN, &args.state_dir)?;
    let Some(applied) = apply::rollback_state(root, &paths)?
        .map(|dir| apply::read_applied_in(&dir))
        .transpose()?
        .flatten()
    else {
        return Ok(Status {
            schema: SCHEMA,
            applied: None,
            dropin: None,
            keys: Vec::new(),
            in_sync: true,
            notes: vec![format!(
                "sysctune has applied nothing here (no {}/{})",
                paths.state_shown,
                crate::state::FILE
            )],
        });
    };
    let mut notes = Vec::new();
    let here = host::netns(root);
    if applied.netns != here {
        notes.push(format!(
            "the last apply ran in network namespace {}, this is {}: live values here are another namespace's",
            if applied.netns.is_empty() { "(none)" } else { &applied.netns },
            if here.is_empty() { "(none)" } else { &here }
        ));
    }

    let dropin_text = host::sysctl_d::read_dropin(root, &applied.dropin)?;
    let entries = dropin_text
        .as_deref()
        .map(|t| crate::dropin::parse(t).entries)
        .unwrap_or_default();
    let state = match &dropin_text {
        None => "absent",
        Some(t) if t.starts_with(&format!("# {}", crate::dropin::HEADER_START)) => "sysctune",
        Some(_) => "foreign",
    };

    let plan = replan(root, &applied, &args.state_dir, &mut notes);

    let mut keys: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
    keys.extend(applied.set.keys().cloned());
    if let Some(p) = &plan {
        keys.extend(p.settings.iter().map(|s| s.key.clone()));
    }
    keys.sort_by(|a, b| crate::keys::order(a).cmp(&crate::keys::order(b)).then(a.cmp(b)));
    keys.dedup();
    let sd = host::sysctl_d::read(root)?;
    let boot = sd.boot(&keys);

    let mut out = Vec::new();
    for key in keys {
        let live = host::read_sysctl(root, &key)?;
        let dropin = entries
            .iter()
            .rev()
            .find(|e| e.key == key)
            .map(|e| e.value.clone());
        let boot = boot.get(&key).and_then(|o| o.boot.clone());
        let recommended = plan
            .as_ref()
            .and_then(|p| p.settings.iter().find(|s| s.key == key))
            .map(|s| s.recommended.clone());
        let drift = drift(&key, &live, &dropin, &boot, &recommended, &applied);
        out.push(KeyStatus {
            key,
            live,
            dropin,
            boot,
            recommended,
            drift,
        });
    }
    let current = plan.as_ref().map(|p| !p.dropin.changed);
    if current == Some(false) {
        notes.push(format!(
            "the drop-in is not what profile {} writes on this host now (run the apply again to update it)",
            applied.profile
        ));
    }
    let in_sync = out.iter().all(|k| k.drift.is_empty()) && current != Some(false) && applied.netns == here;
    Ok(Status {
        schema: SCHEMA,
        applied: Some(AppliedSummary {
            profile: applied.profile.clone(),
            command: apply_command(root, &applied, &args.state_dir),
            time: applied.time.clone(),
            netns: (!applied.netns.is_empty()).then(|| applied.netns.clone()),
        }),
        dropin: Some(DropinStatus {
            path: applied.dropin.clone(),
            state,
            current,
        }),
        keys: out,
        in_sync,
        notes,
    })
}

/// The applied profile, planned again on the host as it is now; `None`, with a note, when
/// it cannot be.
fn replan(
    root: &Root,
    applied: &crate::state::Applied,
    state_dir: &str,
    notes: &mut Vec<String>,
) -> Option<Plan> {
    let replan = crate::planner::plan_root(
        root,
        &PlanArgs {
            profile: applied.spec.clone(),
            sets: applied.sets.clone(),
            dropin: applied.dropin.clone(),
            only: applied.only.clone(),
            exit_code: false,
            snapshot: Vec::new(),
            allow_keys: Vec::new(),
            state_dir: state_dir.to_string(),
            output_dir: None,
            image: None,
        },
    );
    match replan {
        Ok((plan, _)) => Some(plan),
        Err(e) => {
            notes.push(format!("the applied profile cannot be planned now: {e}"));
            None
        }
    }
}

/// Why `key` is out of sync: live against the drop-in, the drop-in against boot, a value
/// set live that no file holds, and the profile's recommendation now.
fn drift(
    key: &str,
    live: &Option<String>,
    dropin: &Option<String>,
    boot: &Option<Assignment>,
    recommended: &Option<String>,
    applied: &crate::state::Applied,
) -> Vec<String> {
    let mut drift = Vec::new();
    if let (Some(d), Some(l)) = (dropin, live)
        && d != l
    {
        drift.push(format!("live {l} differs from the drop-in's {d}"));
    }
    match (dropin, boot) {
        (Some(_), Some(b)) if b.file != applied.dropin => {
            drift.push(format!(
                "at boot {} sets {} and wins over the drop-in",
                b.at(),
                b.value
            ));
        }
        (Some(d), None) => drift.push(format!(
            "the drop-in's {d} is not applied at boot (the drop-in is masked, overridden or not read)"
        )),
        (None, b) if applied.set.contains_key(key) => {
            let at_boot = b
                .as_ref()
                .map(|b| b.value.clone())
                .or_else(|| applied.set.get(key).cloned());
            if let (Some(l), Some(at)) = (live, &at_boot)
                && l != at
            {
                drift.push(format!(
                    "sysctune set it live to {l}, but the drop-in does not hold it: the next boot gives {at}"
                ));
            }
        }
        _ => {}
    }
    if let (Some(r), Some(l)) = (recommended, live)
        && r != l
    {
        drift.push(format!("the profile now recommends {r}"));
    }
    drift
}
