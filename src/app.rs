//! The commands: read the host, plan, render. `main` only parses flags and maps the
//! result to an exit code.

use std::path::PathBuf;

use crate::cli::{ApplyArgs, Cli, Command, Format, PlanArgs, ProfilesAction, RollbackArgs, Shell};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::host::Root;
use crate::report::{self, Style};
use crate::{apply, doctor, guard, host, keys, plan, planner, profile, snapshot, sysctl_d};

/// What a command printed and the exit code it wants.
pub struct Output {
    pub stdout: String,
    /// Errors that did not stop the command (one snapshot of many failed).
    pub stderr: String,
    pub exit: Exit,
}

impl Output {
    fn ok(stdout: String) -> Self {
        Output {
            stdout,
            stderr: String::new(),
            exit: Exit::Ok,
        }
    }
}

pub fn run(cli: &Cli) -> Result<Output> {
    let g = &cli.global;
    let style = Style::detect(g.color.as_str());
    check_flags(cli)?;
    let root = &Root::open(&g.root)?;
    match &cli.command {
        Command::Show {
            keys: wanted,
            profile: p,
            sets,
            allow_keys,
        } => show(root, g.format(), wanted, p.as_deref(), sets, allow_keys, &style),
        Command::Plan(args) if !args.snapshot.is_empty() => {
            plan_snapshots(args, g.format(), &style, g.verbose)
        }
        Command::Snapshot { keys: wanted } => take_snapshot(root, wanted),
        Command::Plan(args) if g.format() == Format::Kubernetes => plan_kubernetes(root, args),
        Command::Plan(args) => {
            let (plan, _) = planner::plan_root(root, args)?;
            Ok(plan_output(&plan, args.exit_code, g.format(), &style, g.verbose))
        }
        Command::Apply(args) if args.dry_run => {
            let (plan, _) = planner::plan_root(root, &args.plan)?;
            Ok(plan_output(
                &plan,
                args.plan.exit_code,
                g.format(),
                &style,
                g.verbose,
            ))
        }
        Command::Apply(args) => {
            let report = run_apply(root, args)?;
            Ok(Output::ok(match g.format() {
                Format::Json => report::json(&report),
                // Kubernetes and Prometheus: refused by check_flags before this.
                Format::Text | Format::Kubernetes | Format::Prometheus => {
                    report::apply::text(&report, &style)
                }
            }))
        }
        Command::Status(state) => {
            let report = crate::status::status(root, state)?;
            Ok(Output {
                stdout: match g.format() {
                    Format::Json => report::json(&report),
                    // Kubernetes and Prometheus: refused by check_flags before this.
                    Format::Text | Format::Kubernetes | Format::Prometheus => {
                        report::status::text(&report, &style)
                    }
                },
                stderr: String::new(),
                exit: report.exit(),
            })
        }
        Command::Rollback(state) => {
            let report = run_rollback(root, state)?;
            Ok(Output::ok(match g.format() {
                Format::Json => report::json(&report),
                // Kubernetes and Prometheus: refused by check_flags before this.
                Format::Text | Format::Kubernetes | Format::Prometheus => {
                    report::rollback::text(&report, &style)
                }
            }))
        }
        Command::Doctor(args) => {
            let top = args.top.unwrap_or(match g.format() {
                // Kubernetes: refused by check_flags before this.
                Format::Text | Format::Kubernetes => 5,
                Format::Json | Format::Prometheus => 20,
            });
            let since = match &args.since {
                Some(path) => Some(doctor::counters::read_since(path, doctor::now())?),
                None => None,
            };
            let report = doctor::run(root, top, since, args.sockets, &args.state_dir)?;
            let stdout = match g.format() {
                Format::Json => report::json(&report),
                // Kubernetes: refused by check_flags before this.
                Format::Text | Format::Kubernetes => report::doctor::text(&report, &style),
                Format::Prometheus => doctor::prometheus::render(&report),
            };
            Ok(Output {
                stdout,
                stderr: String::new(),
                exit: report.exit(),
            })
        }
        Command::Recommend => {
            let r = crate::recommend::run(root)?;
            Ok(Output::ok(match g.format() {
                Format::Json => report::json(&r),
                // Kubernetes and Prometheus: refused by check_flags before this.
                Format::Text | Format::Kubernetes | Format::Prometheus => report::recommend::text(&r),
            }))
        }
        Command::Profiles { action: None } => {
            let list = report::profiles::Document::builtin();
            Ok(Output::ok(match g.format() {
                Format::Json => report::json(&list),
                // Kubernetes and Prometheus: refused by check_flags before this.
                Format::Text | Format::Kubernetes | Format::Prometheus => report::profiles::text(&list),
            }))
        }
        Command::Profiles {
            action: Some(ProfilesAction::Show { name, resolved }),
        } => profiles_show(name, *resolved).map(Output::ok),
        Command::Explain { topic } => report::explain::text(topic).map(Output::ok),
        Command::Completions { shell } => Ok(Output::ok(completions(*shell))),
        Command::Man => man().map(Output::ok),
    }
}

/// `snapshot`: the host under the root as a JSON document, with the keys of `--key` too.
fn take_snapshot(root: &Root, wanted: &[String]) -> Result<Output> {
    let mut extra = Vec::new();
    for k in wanted {
        extra.push(keys::normalize_key(k).map_err(|e| Error::input(format!("--key: {e}")))?);
    }
    let snap = snapshot::take(root, &extra)?;
    Ok(Output::ok(report::json(&snap)))
}

/// `plan --format kubernetes`: the plan as manifests, with the narrower plan of the
/// host-wide keys for the node DaemonSet.
fn plan_kubernetes(root: &Root, args: &PlanArgs) -> Result<Output> {
    let (plan, _) = planner::plan_root(root, args)?;
    // The DaemonSet applies only the host-wide keys: its ConfigMap holds the drop-in
    // of that narrower plan.
    let node_keys = report::kubernetes::node_keys(&plan);
    let node_plan = if node_keys.is_empty() {
        None
    } else {
        let only = PlanArgs {
            only: node_keys,
            ..args.clone()
        };
        Some(planner::plan_root(root, &only)?.0)
    };
    Ok(Output::ok(report::kubernetes::render(
        &plan,
        node_plan.as_ref(),
        args,
    )))
}

/// `profiles show NAME`: a built-in profile's TOML as written, or `--resolved`, with
/// its `extends` chain merged.
fn profiles_show(name: &str, resolved: bool) -> Result<String> {
    if resolved {
        // Validated as a whole first: a merged result that would not plan is an error.
        profile::load(name, &[])?;
        let r = profile::resolve_extends(name)?;
        return report::profiles::resolved(name, &r);
    }
    match profile::builtin_source(name) {
        Some(text) => Ok(report::profiles::source(text)),
        None => Err(Error::input(format!(
            "unknown profile {name:?}; built-in profiles: {}",
            profile::builtin_names().join(", ")
        ))),
    }
}

/// Flags that do not apply to the command are errors, not silently ignored: an
/// `apply --snapshot` that applied to the local root instead is the kind of surprise
/// automation must never get.
fn check_flags(cli: &Cli) -> Result<()> {
    let json = cli.global.format() == Format::Json;
    let kubernetes = cli.global.format() == Format::Kubernetes;
    let no = |what: &str| Err(Error::input(what.to_string()));
    // Only doctor writes metrics; every other match on the format treats the refused
    // prometheus as text.
    if cli.global.format_given == Some(Format::Prometheus) && !matches!(cli.command, Command::Doctor(_)) {
        return no(
            "--format prometheus: only `sysctune doctor` writes metrics (the Prometheus text exposition \
             format); use --format text or json here",
        );
    }
    match &cli.command {
        Command::Plan(a) if kubernetes && !a.snapshot.is_empty() => no(
            "plan --format kubernetes --snapshot: Kubernetes output is for one host's plan (a node pool's \
             representative); plan a snapshot with --format json, or drop --snapshot",
        ),
        Command::Plan(a) if kubernetes && a.exit_code => no(
            "plan --format kubernetes --exit-code: --exit-code reports pending changes on this host; the \
             Kubernetes manifests do not change it. Use one or the other",
        ),
        Command::Plan(_) if kubernetes => Ok(()),
        Command::Plan(a) | Command::Apply(ApplyArgs { plan: a, .. }) if a.image.is_some() => {
            no("--image: only with `plan --format kubernetes` (the image of the node DaemonSet)")
        }
        _ if kubernetes => no(
            "--format kubernetes: only `sysctune plan` prints Kubernetes YAML (pod sysctls, the kubelet's \
             --allowed-unsafe-sysctls, a node DaemonSet); use --format json or text here",
        ),
        Command::Apply(a) if !a.plan.snapshot.is_empty() => no(
            "apply --snapshot: apply writes to the host under --root, never to a snapshot; plan a snapshot with \
             `sysctune plan --snapshot FILE`, apply on the host itself",
        ),
        Command::Apply(a) if a.plan.exit_code && !a.dry_run => no(
            "apply --exit-code: only with --dry-run (then it is plan --exit-code); apply's exit code is 0 applied \
             or nothing to do, 2 refused or failed, and `changed` in --format json says whether it wrote",
        ),
        Command::Explain { .. } if json => no(
            "explain --format json: explain prints a rule's documentation as text; for machine-readable rules use \
             `sysctune plan --format json` (settings[].rules) or read `sysctune explain RULE` as text",
        ),
        Command::Completions { .. } if json => {
            no("completions --format json: completions prints a shell script (bash, zsh or fish), never JSON")
        }
        Command::Man if json => no("man --format json: man prints a roff man page, never JSON"),
        Command::Snapshot { .. } if cli.global.format_given == Some(Format::Text) => no(
            "snapshot --format text: a snapshot is a JSON document (sysctune/snapshot/v1), read back by \
             `plan --snapshot`; omit --format, or use `sysctune show` for text",
        ),
        _ => Ok(()),
    }
}

/// A plan as text or JSON; with `--exit-code`, exit 1 when changes are pending.
fn plan_output(plan: &plan::Plan, exit_code: bool, format: Format, style: &Style, verbose: bool) -> Output {
    let stdout = match format {
        Format::Json => report::json(plan),
        // Kubernetes and Prometheus: refused by check_flags before this.
        Format::Text | Format::Kubernetes | Format::Prometheus => report::plan::text(plan, style, verbose),
    };
    Output {
        stdout,
        stderr: String::new(),
        exit: Exit::attention_if(exit_code && plan.changed),
    }
}

/// apply: check everything that can be checked before the lock, then plan under the
/// lock (so the plan sees the state it changes) and carry it out.
fn run_apply(root: &Root, args: &ApplyArgs) -> Result<apply::ApplyReport> {
    let live = !args.no_live;
    apply::check_dropin_location(&args.plan.dropin, args.allow_any_dropin_path)?;
    let paths = apply::Paths::new(&args.plan.dropin, &args.plan.state_dir)?;
    // Bad profiles and flags fail before anything is touched, the lock included.
    let profile = profile::load(&args.plan.profile, &args.plan.sets)?;
    profile::check_pins(&profile, &args.plan.allow_keys)?;
    apply::check_privileges(root, live, "writing")?;
    // A plan that would hurt the host is refused before the lock (nothing written at all),
    // and again under it, on the state it would change.
    let (plan, facts) = planner::plan_root(root, &args.plan)?;
    let overridden = refuse_what_hurts(&plan, &facts, &profile, args.force)?;
    let (_lock, state) = apply::lock(root, &paths, std::time::Duration::from_secs(args.lock_timeout))?;
    let (plan, facts) = planner::plan_root(root, &args.plan)?;
    let overridden = refuse_what_hurts(&plan, &facts, &profile, args.force).map(|o| {
        let mut all = overridden;
        all.extend(o.into_iter().filter(|m| !all.contains(m)).collect::<Vec<_>>());
        all
    })?;
    let trust = apply::trust_for(&facts.kernel, args.allow_any_dropin_path, &args.plan.allow_keys);
    let mut report = apply::apply(
        root,
        &paths,
        &state,
        &plan,
        apply::Options {
            live,
            file: !args.no_file,
        },
        &trust,
        &apply::Invocation {
            spec: &args.plan.profile,
            sets: &args.plan.sets,
            only: &args.plan.only,
            netns: host::netns(root),
        },
    )?;
    report.undo_command = crate::hint::Command::new(Some(root.path()), "rollback")
        .state_dir(&args.plan.state_dir)
        .flag("--allow-any-dropin-path", args.allow_any_dropin_path)
        .args("--allow-key", &args.plan.allow_keys)
        .render();
    report.forced = !overridden.is_empty();
    report.overridden = overridden;
    Ok(report)
}

/// The refusals of [`guard::refusals`] for this plan: an error unless every one may be
/// forced and `--force` is given; then what was overridden.
fn refuse_what_hurts(
    plan: &plan::Plan,
    facts: &host::Facts,
    profile: &profile::Profile,
    force: bool,
) -> Result<Vec<String>> {
    let refusals = guard::refusals(plan, facts, profile);
    if refusals.is_empty() {
        return Ok(Vec::new());
    }
    let list = |r: &[&guard::Refusal]| {
        r.iter()
            .map(|r| format!("\n  - {}", r.message))
            .collect::<String>()
    };
    let fixed: Vec<&guard::Refusal> = refusals.iter().filter(|r| !r.forceable).collect();
    if !fixed.is_empty() {
        return Err(Error::Write(format!(
            "apply refused, nothing was written:{}",
            list(&fixed)
        )));
    }
    if !force {
        let all: Vec<&guard::Refusal> = refusals.iter().collect();
        return Err(Error::Write(format!(
            "apply refused, nothing was written:{}\nChange the profile, or pass --force to apply it anyway",
            list(&all)
        )));
    }
    Ok(refusals.into_iter().map(|r| r.message).collect())
}

fn run_rollback(root: &Root, args: &RollbackArgs) -> Result<apply::RollbackReport> {
    let state_args = &args.state;
    let paths = apply::Paths::new(plan::DEFAULT_DROPIN, &state_args.state_dir)?;
    apply::check_privileges(root, true, "restoring")?;
    let kernel = host::read_sysctl(root, "kernel.osrelease")?.unwrap_or_else(|| "unknown".into());
    let trust = apply::trust_for(&kernel, args.allow_any_dropin_path, &args.allow_keys);
    let state = apply::rollback_state(root, &paths)?;
    let _lock = match &state {
        Some(dir) => {
            let lock = apply::Lock::acquire(dir, std::time::Duration::from_secs(state_args.lock_timeout))?;
            apply::remove_stale_temporaries(root, &paths, dir);
            Some(lock)
        }
        None => None,
    };
    apply::rollback(
        root,
        &paths,
        state.as_ref(),
        &trust,
        &host::netns(root),
        args.dry_run,
    )
}

fn show(
    root: &Root,
    format: Format,
    wanted: &[String],
    profile_arg: Option<&str>,
    sets: &[String],
    allow_keys: &[String],
    style: &Style,
) -> Result<Output> {
    // With a profile: what it recommends for each key it manages, and the rules that say so.
    let recommended: std::collections::BTreeMap<String, (String, Vec<String>)> = match profile_arg {
        Some(p) => {
            let args = PlanArgs {
                profile: p.to_string(),
                sets: sets.to_vec(),
                dropin: plan::DEFAULT_DROPIN.to_string(),
                only: Vec::new(),
                exit_code: false,
                snapshot: Vec::new(),
                allow_keys: allow_keys.to_vec(),
                state_dir: apply::DEFAULT_STATE_DIR.to_string(),
                image: None,
                output_dir: None,
            };
            let (plan, _) = planner::plan_root(root, &args)?;
            plan.settings
                .into_iter()
                .map(|s| (s.key, (s.recommended, s.rules)))
                .collect()
        }
        None => Default::default(),
    };
    let mut canonical = Vec::new();
    for k in wanted {
        canonical.push(keys::normalize_key(k).map_err(Error::input)?);
    }
    let extra: Vec<String> = canonical
        .iter()
        .filter(|k| keys::info(k).is_none())
        .cloned()
        .collect();
    let host::Observed {
        facts, sysctl_d: sd, ..
    } = host::read(root, &extra, None)?;
    let mut list: Vec<String> = if canonical.is_empty() {
        facts
            .sysctl
            .keys()
            .cloned()
            .chain(recommended.keys().cloned())
            .collect()
    } else {
        canonical.clone()
    };
    list.sort_by(|a, b| keys::order(a).cmp(&keys::order(b)).then(a.cmp(b)));
    list.dedup();
    let views = sysctl_d::views(&sd, &list, &|k| facts.value(k).map(str::to_string));
    let stdout = match format {
        Format::Json => {
            let doc = report::show::Document::new(
                &facts,
                &sd,
                &views,
                profile_arg.is_some().then_some(&recommended),
            );
            report::json(&doc)
        }
        // Kubernetes and Prometheus: refused by check_flags before this.
        Format::Text | Format::Kubernetes | Format::Prometheus => {
            report::show::text(&facts, &views, &sd, &recommended, style)
        }
    };
    Ok(Output::ok(stdout))
}

fn completions(shell: Shell) -> String {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut cmd, "sysctune", &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn man() -> Result<String> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let mut buf = Vec::new();
    let page = clap_mangen::Man::new(cmd).section("8");
    page.render(&mut buf)
        .map_err(|e| Error::Write(format!("rendering the man page: {e}")))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `plan --snapshot FILE...`: one plan per host. A snapshot that cannot be read or planned
/// is reported on stderr and in the exit code (2); the others are still planned.
fn plan_snapshots(args: &PlanArgs, format: Format, style: &Style, verbose: bool) -> Result<Output> {
    let prof = profile::load(&args.profile, &args.sets)?;
    profile::check_pins(&prof, &args.allow_keys)?;
    apply::inside_root("--dropin", &args.dropin)?;
    let files = snapshot::expand(&args.snapshot)?;
    let one = |path: &PathBuf| -> Result<plan::Plan> {
        if path.is_dir() {
            return Err(Error::host(path, "no *.json snapshot in this directory"));
        }
        let snap = snapshot::load(path)?;
        planner::plan_snapshot(&snap, &prof, args).map_err(|e| match e {
            Error::Host { .. } => e,
            other => Error::host(path, other.to_string()),
        })
    };

    if files.len() == 1
        && args.snapshot.len() == 1
        && files[0] == args.snapshot[0]
        && args.output_dir.is_none()
    {
        return Ok(plan_output(
            &one(&files[0])?,
            args.exit_code,
            format,
            style,
            verbose,
        ));
    }

    // Streamed: workers take hosts from a shared counter, results are printed in the order
    // of the hosts as they come, and at most a window of them waits in memory. Each keeps
    // only what is printed (a JSON line, a summary row), not the plans.
    let out_dir = match &args.output_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, &e))?;
            Some(Root::open(d).map_err(|e| Error::input(format!("--output-dir: {e}")))?)
        }
        None => None,
    };
    let summarise = |path: &PathBuf| -> Result<(Option<String>, report::fleet::Row)> {
        let plan = one(path)?;
        if let Some(dir) = &out_dir {
            write_fleet_dropin(dir, path, &plan)?;
        }
        let line = (format == Format::Json).then(|| report::json_line(&plan));
        Ok((line, report::fleet::Row::of(path, &plan)))
    };
    let host = |i: usize| guarded(&files[i], &|p| summarise(&p.to_path_buf()));
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    let mut failed = 0;
    let mut stdout = std::io::stdout().lock();
    let mut broken = false;
    let mut emit = |i: usize, result: Result<(Option<String>, report::fleet::Row)>| {
        use std::io::Write;
        let line = match result {
            Ok((line, row)) => {
                rows.push(row);
                line
            }
            Err(e) => {
                failed += 1;
                let _ = std::io::stderr()
                    .lock()
                    .write_all(report::escape::safe_lines(&format!("sysctune: error: {e}\n")).as_bytes());
                // One line per host, so lines match hosts.
                (format == Format::Json).then(|| report::fleet::failed_line(&files[i], &e.to_string()))
            }
        };
        if let Some(line) = line
            && !broken
            && stdout
                .write_all(line.as_bytes())
                .and_then(|_| stdout.write_all(b"\n"))
                .and_then(|_| stdout.flush())
                .is_err()
        {
            broken = true;
        }
    };
    crate::fleet::ordered(files.len(), workers, 4 * workers, &host, &mut emit);
    let changed = rows.iter().any(|r| r.changed);
    let stdout = if format == Format::Text {
        report::fleet::text(&rows, files.len(), failed, style)
    } else {
        String::new()
    };
    let exit = if failed > 0 {
        Exit::Failed
    } else {
        Exit::attention_if(args.exit_code && changed)
    };
    Ok(Output {
        stdout,
        stderr: String::new(),
        exit,
    })
}

/// `--output-dir DIR`: the drop-in a host would get, at `DIR/NAME/<drop-in path>`, NAME the
/// snapshot's file name without `.json` (snapshots are taken as `HOST.json`), for a config
/// repository to review as a pull request.
fn write_fleet_dropin(dir: &Root, snapshot: &std::path::Path, plan: &plan::Plan) -> Result<()> {
    let name = snapshot
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty() && *s != "." && *s != ".." && !s.chars().any(char::is_control))
        .ok_or_else(|| Error::host(snapshot, "a snapshot's file name must name the host (HOST.json)"))?;
    let (parent, file) = plan
        .dropin
        .path
        .rsplit_once('/')
        .ok_or_else(|| Error::input(format!("--dropin {}: not an absolute path", plan.dropin.path)))?;
    let target = format!("/{name}{parent}");
    dir.dir(&target, Some(0o755))?
        .ok_or_else(|| Error::Write(format!("{}: could not be created", dir.shown(&target).display())))?
        .write_atomic(file, plan.dropin.content.as_bytes(), 0o644)
}

/// `work` on one host of a fleet: a bug (a panic) in one host's planning is an error for
/// that host alone; the others are still planned and reported.
fn guarded<T>(path: &std::path::Path, work: &dyn Fn(&std::path::Path) -> Result<T>) -> Result<T> {
    crate::crash::catch(|| work(path)).unwrap_or_else(|panic| {
        Err(Error::input(format!(
            "internal error planning {}: {panic}; please report it",
            path.display()
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_host_fails_alone() {
        let files: Vec<PathBuf> = ["a.json", "boom.json", "c.json"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let work = |p: &std::path::Path| -> Result<String> {
            if p.ends_with("boom.json") {
                panic!("rule x divided by zero");
            }
            Ok(p.display().to_string())
        };
        let mut results = Vec::new();
        crate::fleet::ordered(files.len(), 2, 4, &|i| guarded(&files[i], &work), &mut |_, r| {
            results.push(r)
        });
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].as_ref().unwrap(), "a.json");
        assert_eq!(results[2].as_ref().unwrap(), "c.json");
        let e = results[1].as_ref().unwrap_err().to_string();
        assert!(
            e.starts_with("internal error planning boom.json: rule x divided by zero")
                && e.ends_with("please report it"),
            "{e}"
        );
    }
}
