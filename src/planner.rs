//! Planning one host: on its root (the live host or `--root`) or from its snapshot, by one
//! path. Both give [`host::Observed`] (read by [`host::read`], or rebuilt by
//! [`Snapshot::observed`]) and [`plan_observed`] plans it; only what a snapshot cannot
//! hold is read from the root, when there is one.

use crate::cli::PlanArgs;
use crate::error::Result;
use crate::host::{self, Observed, Root};
use crate::plan::{self, Plan};
use crate::profile::{self, Profile};
use crate::snapshot::Snapshot;
use crate::{apply, guard, hint};

/// Plan the host under `root` with the profile and flags of `args`; its facts too, for
/// the checks of `apply`.
pub fn plan_root(root: &Root, args: &PlanArgs) -> Result<(Plan, host::Facts)> {
    let profile = profile::load(&args.profile, &args.sets)?;
    profile::check_pins(&profile, &args.allow_keys)?;
    apply::inside_root("--dropin", &args.dropin)?;
    let observed = host::read(root, &pins(&profile), Some(&args.dropin))?;
    let plan = plan_observed(&observed, &profile, args, Some(root))?;
    Ok((plan, observed.facts))
}

/// Plan one snapshot with `profile` (loaded and checked once for a fleet).
pub fn plan_snapshot(snap: &Snapshot, profile: &Profile, args: &PlanArgs) -> Result<Plan> {
    plan_observed(&snap.observed(&pins(profile), &args.dropin), profile, args, None)
}

/// The keys `profile` pins: read beside the known keys.
fn pins(profile: &Profile) -> Vec<String> {
    profile.sysctl.iter().map(|(k, _)| k.clone()).collect()
}

/// Plan what was observed of a host, and judge the plan's hazards. `root` is where it was
/// read, `None` for a snapshot: then nothing sysctune set there before is known, the plan
/// is applied on the host itself, from its own root, and the tcp tables (which a snapshot
/// does not hold) are left to that apply's check.
pub fn plan_observed(
    observed: &Observed,
    profile: &Profile,
    args: &PlanArgs,
    root: Option<&Root>,
) -> Result<Plan> {
    let set_before = match root {
        Some(root) => {
            apply::inside_root("--state-dir", &args.state_dir)?;
            apply::read_applied(root, &args.state_dir)?
                .map(|a| a.set)
                .unwrap_or_default()
        }
        None => Default::default(),
    };
    let mut plan = plan::plan(&plan::Request {
        facts: &observed.facts,
        profile,
        only: &args.only,
        dropin_path: &args.dropin,
        dropin_current: observed.dropin.as_deref(),
        sysctl_d: &observed.sysctl_d,
        set_before: &set_before,
    })?;
    plan.apply_command = hint::apply(root.map(Root::path), args);
    let ports_held = |lo: u32, hi: u32, reserved: &[(u32, u32)]| -> Result<Option<u64>> {
        let Some(root) = root else {
            return Ok(None);
        };
        // As doctor reads them: over netlink on a live host, filtered to the range.
        let (scan, ..) = host::sockets::read(root, lo, hi, reserved, host::sockets::Want::Auto)?;
        Ok(Some(scan.top(1).first().map_or(0, |d| d.counts.total())))
    };
    plan.findings
        .extend(guard::hazards(&plan, &observed.facts, &ports_held)?);
    Ok(plan)
}
