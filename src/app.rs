//! The commands: read the host, plan, render. `main` only parses flags and maps the
//! result to an exit code.

use std::path::{Path, PathBuf};

use crate::cli::{ApplyArgs, Cli, Command, Format, PlanArgs, ProfilesAction, Shell, StateArgs};
use crate::error::{Error, Result};
use crate::report::{self, Style, text};
use crate::{apply, doctor, host, keys, plan, profile, rules, snapshot, sysctl_d};

/// What a command printed and the exit code it wants.
pub struct Output {
    pub stdout: String,
    /// Errors that did not stop the command (one snapshot of many failed).
    pub stderr: String,
    pub code: i32,
}

impl Output {
    fn ok(stdout: String) -> Self {
        Output {
            stdout,
            stderr: String::new(),
            code: 0,
        }
    }
}

pub fn run(cli: &Cli) -> Result<Output> {
    let g = &cli.global;
    let style = Style::detect(g.color.as_str());
    if !g.root.is_dir() {
        return Err(Error::input(format!(
            "--root {}: not a directory; give the root of a host's filesystem (default /)",
            g.root.display()
        )));
    }
    match &cli.command {
        Command::Show {
            keys: wanted,
            profile: p,
            sets,
        } => show(&g.root, g.format, wanted, p.as_deref(), sets, &style),
        Command::Plan(args) if !args.snapshot.is_empty() => plan_snapshots(args, g.format, &style, g.verbose),
        Command::Snapshot { keys: wanted } => {
            let mut extra = Vec::new();
            for k in wanted {
                extra.push(keys::normalize_key(k).map_err(|e| Error::input(format!("--key: {e}")))?);
            }
            let snap = snapshot::take(&g.root, &extra)?;
            Ok(Output::ok(report::json(&snap)))
        }
        Command::Plan(args) => {
            let (plan, _) = make_plan(&g.root, args)?;
            Ok(plan_output(&plan, args.exit_code, g.format, &style, g.verbose))
        }
        Command::Apply(args) if args.dry_run => {
            let (plan, _) = make_plan(&g.root, &args.plan)?;
            Ok(plan_output(
                &plan,
                args.plan.exit_code,
                g.format,
                &style,
                g.verbose,
            ))
        }
        Command::Apply(args) => {
            let report = run_apply(&g.root, args)?;
            Ok(Output::ok(match g.format {
                Format::Json => report::json(&report),
                Format::Text => text::apply(&report, &style),
            }))
        }
        Command::Rollback(state) => {
            let report = run_rollback(&g.root, state)?;
            Ok(Output::ok(match g.format {
                Format::Json => report::json(&report),
                Format::Text => text::rollback(&report, &style),
            }))
        }
        Command::Doctor(args) => {
            let top = args.top.unwrap_or(match g.format {
                Format::Text => 5,
                Format::Json => 20,
            });
            let report = doctor::run(&g.root, top)?;
            let stdout = match g.format {
                Format::Json => report::json(&report),
                Format::Text => text::doctor(&report, &style),
            };
            Ok(Output {
                stdout,
                stderr: String::new(),
                code: report.exit_code(),
            })
        }
        Command::Profiles { action: None } => Ok(Output::ok(profiles_list(g.format))),
        Command::Profiles {
            action: Some(ProfilesAction::Show { name }),
        } => match profile::builtin_source(name) {
            Some(text) => Ok(Output::ok(text.to_string())),
            None => Err(Error::input(format!(
                "unknown profile {name:?}; built-in profiles: {}",
                profile::builtin_names().join(", ")
            ))),
        },
        Command::Explain { topic } => explain(topic).map(Output::ok),
        Command::Completions { shell } => Ok(Output::ok(completions(*shell))),
        Command::Man => man().map(Output::ok),
    }
}

/// A plan as text or JSON; with `--exit-code`, exit 1 when changes are pending.
fn plan_output(plan: &plan::Plan, exit_code: bool, format: Format, style: &Style, verbose: bool) -> Output {
    let stdout = match format {
        Format::Json => report::json(plan),
        Format::Text => text::plan(plan, style, verbose),
    };
    Output {
        stdout,
        stderr: String::new(),
        code: if exit_code && plan.changed { 1 } else { 0 },
    }
}

/// The drop-in path inside the root, validated: absolute, no `..`.
pub fn dropin_paths(root: &Path, dropin: &str) -> Result<(String, PathBuf)> {
    Ok((dropin.to_string(), apply::inside_root(root, "--dropin", dropin)?))
}

fn state_paths(root: &Path, dropin: &str, state: &StateArgs) -> Result<apply::Paths> {
    let (dropin_shown, dropin) = dropin_paths(root, dropin)?;
    Ok(apply::Paths {
        root: root.to_path_buf(),
        dropin_shown,
        dropin,
        state_shown: state.state_dir.clone(),
        state: apply::inside_root(root, "--state-dir", &state.state_dir)?,
        lock: apply::inside_root(root, "lock", apply::LOCK_PATH)?,
    })
}

/// apply: check everything that can be checked before the lock, then plan under the
/// lock (so the plan sees the state it changes) and carry it out.
fn run_apply(root: &Path, args: &ApplyArgs) -> Result<apply::ApplyReport> {
    let live = !args.no_live;
    apply::check_dropin_location(&args.plan.dropin, args.allow_any_dropin_path)?;
    let paths = state_paths(root, &args.plan.dropin, &args.state)?;
    // Bad profiles and flags fail before anything is touched, the lock included.
    profile::load(&args.plan.profile, &args.plan.sets)?;
    apply::check_privileges(root, live)?;
    let _lock = apply::Lock::acquire(
        &paths.lock,
        std::time::Duration::from_secs(args.state.lock_timeout),
    )?;
    let (plan, _) = make_plan(root, &args.plan)?;
    apply::apply(
        &paths,
        &plan,
        apply::Options {
            live,
            file: !args.no_file,
        },
    )
}

fn run_rollback(root: &Path, state: &StateArgs) -> Result<apply::RollbackReport> {
    let paths = state_paths(root, plan::DEFAULT_DROPIN, state)?;
    apply::check_privileges(root, true)?;
    let _lock = apply::Lock::acquire(&paths.lock, std::time::Duration::from_secs(state.lock_timeout))?;
    apply::rollback(&paths)
}
/// Read the drop-in's current content; `None` when absent.
pub fn read_dropin(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::host(path, "not UTF-8 text")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, &e)),
    }
}

pub fn make_plan(root: &Path, args: &PlanArgs) -> Result<(plan::Plan, host::Facts)> {
    let profile = profile::load(&args.profile, &args.sets)?;
    let (shown, real) = dropin_paths(root, &args.dropin)?;
    let extra: Vec<String> = profile.sysctl.iter().map(|(k, _)| k.clone()).collect();
    let facts = host::read(root, &extra)?;
    let current = read_dropin(&real)?;
    let sysctl_d = sysctl_d::read(root)?;
    let plan = plan::plan(&plan::Request {
        facts: &facts,
        profile: &profile,
        only: &args.only,
        dropin_path: &shown,
        dropin_current: current.as_deref(),
        sysctl_d: &sysctl_d,
    })?;
    Ok((plan, facts))
}

fn show(
    root: &Path,
    format: Format,
    wanted: &[String],
    profile_arg: Option<&str>,
    sets: &[String],
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
            };
            let (plan, _) = make_plan(root, &args)?;
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
    let facts = host::read(root, &extra)?;
    let sd = sysctl_d::read(root)?;
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
            let host = serde_json::json!({
                "name": facts.hostname,
                "mem_total": facts.mem.mem_total,
                "swap_total": facts.mem.swap_total,
                "hugetlb": facts.mem.hugetlb,
                "mem_available": facts.mem.mem_available,
                "page_size": facts.page_size,
                "commit_limit": facts.mem.commit_limit,
                "committed_as": facts.mem.committed_as,
                "kernel": facts.kernel,
                "sockstat": facts.sockstat,
            });
            let masked: Vec<&str> = sd
                .files
                .iter()
                .filter(|f| f.winner() && f.kind == sysctl_d::Kind::Mask)
                .map(|f| f.path.as_str())
                .collect();
            let overridden: Vec<_> = sd
                .files
                .iter()
                .filter_map(|f| {
                    let by = f.overridden_by.as_deref()?;
                    Some(serde_json::json!({"file": f.path, "by": by}))
                })
                .collect();
            let warnings: Vec<&String> = facts.warnings.iter().chain(&sd.notes).collect();
            report::json(&serde_json::json!({
                "schema": "sysctune/show/v1",
                "host": host,
                "files": sd.applied_paths(),
                "masked": masked,
                "overridden": overridden,
                "procps_also_reads": sd.sysctl_conf.as_ref().map(|_| sysctl_d::SYSCTL_CONF),
                "keys": views.iter().map(|v| {
                    let mut j = serde_json::to_value(v).expect("plain data serialises");
                    if profile_arg.is_some() {
                        j["recommended"] = recommended.get(&v.key).map_or(serde_json::Value::Null, |(r, _)| r.clone().into());
                    }
                    j
                }).collect::<Vec<_>>(),
                "warnings": warnings,
            }))
        }
        Format::Text => text::show(&facts, &views, &sd, &recommended, style),
    };
    Ok(Output::ok(stdout))
}

fn profiles_list(format: Format) -> String {
    let list: Vec<(String, String)> = profile::BUILTIN
        .iter()
        .map(|(name, src)| {
            let desc = profile::load(name, &[])
                .ok()
                .and_then(|p| p.description)
                .unwrap_or_default();
            let _ = src;
            (name.to_string(), desc)
        })
        .collect();
    match format {
        Format::Json => report::json(&serde_json::json!({
            "schema": "sysctune/profiles/v1",
            "profiles": list.iter().map(|(n, d)| serde_json::json!({"name": n, "description": d})).collect::<Vec<_>>(),
        })),
        Format::Text => {
            let w = list.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            let mut out =
                String::from("Built-in profiles (sysctune profiles show NAME prints one as TOML):\n");
            for (n, d) in list {
                out.push_str(&format!("  {n:w$}  {d}\n"));
            }
            out
        }
    }
}

fn explain(topic: &str) -> Result<String> {
    if let Some(rule) = rules::find(topic) {
        return Ok(rule_doc(rule));
    }
    let key = keys::normalize_key(topic).ok();
    if let Some(rule) = key.as_deref().and_then(rules::for_key) {
        let key = key.unwrap_or_default();
        let unit = keys::info(&key).map(|i| i.unit).unwrap_or("");
        return Ok(format!(
            "{key} ({unit}) is managed by rule {}.\n\n{}",
            rule.id(),
            rule_doc(rule)
        ));
    }
    if let Some(info) = key.as_deref().and_then(keys::info) {
        return Ok(format!(
            "{} is known to sysctune ({}, {:?} scope) but no rule computes it; pin it in a profile's [sysctl] table.\n",
            info.name, info.unit, info.scope
        ));
    }
    let ids: Vec<&str> = rules::RULES.iter().map(|r| r.id()).collect();
    Err(Error::input(format!(
        "nothing to explain for {topic:?}: give a rule ({}) or a key one of them manages (e.g. net.ipv4.tcp_mem)",
        ids.join(", ")
    )))
}

fn rule_doc(rule: &dyn rules::Rule) -> String {
    let mut s = format!(
        "Rule {} — keys: {}\n\n{}",
        rule.id(),
        rule.keys().join(", "),
        rule.doc().trim_end()
    );
    s.push('\n');
    s
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

/// Plan one snapshot: the same inputs `make_plan` reads from a host, from the document.
pub fn plan_snapshot(
    snap: &snapshot::Snapshot,
    prof: &profile::Profile,
    args: &PlanArgs,
) -> Result<plan::Plan> {
    let mut facts = snap.facts();
    for (key, _) in &prof.sysctl {
        if !facts.sysctl.contains_key(key) {
            facts.warnings.push(format!(
                "{key} is not in the snapshot, so its current value is unknown (take it with `sysctune snapshot --key {key}`)"
            ));
        }
    }
    let sd = snap.sysctl_d();
    plan::plan(&plan::Request {
        facts: &facts,
        profile: prof,
        only: &args.only,
        dropin_path: &args.dropin,
        dropin_current: snap.file(&args.dropin),
        sysctl_d: &sd,
    })
}

/// `plan --snapshot FILE...`: one plan per host. A snapshot that cannot be read or planned
/// is reported on stderr and in the exit code (2); the others are still planned.
fn plan_snapshots(args: &PlanArgs, format: Format, style: &Style, verbose: bool) -> Result<Output> {
    let prof = profile::load(&args.profile, &args.sets)?;
    apply::inside_root(Path::new("/"), "--dropin", &args.dropin)?;
    let files = snapshot::expand(&args.snapshot);
    let one = |path: &PathBuf| -> Result<plan::Plan> {
        if path.is_dir() {
            return Err(Error::host(path, "no *.json snapshot in this directory"));
        }
        let snap = snapshot::load(path)?;
        plan_snapshot(&snap, &prof, args).map_err(|e| match e {
            Error::Host { .. } => e,
            other => Error::host(path, other.to_string()),
        })
    };

    if files.len() == 1 && args.snapshot.len() == 1 && !args.snapshot[0].is_dir() {
        return Ok(plan_output(
            &one(&files[0])?,
            args.exit_code,
            format,
            style,
            verbose,
        ));
    }

    // Each worker keeps only what is printed (a JSON line, a summary row), not the plans.
    let summarise = |path: &PathBuf| -> Result<(Option<String>, text::FleetRow)> {
        let plan = one(path)?;
        let line = (format == Format::Json).then(|| report::json_line(&plan));
        Ok((line, text::FleetRow::of(path, &plan)))
    };
    let results = for_each_host(&files, &summarise);

    let mut stdout = String::new();
    let mut stderr = String::new();
    let mut rows = Vec::new();
    let mut failed = 0;
    for result in results {
        match result {
            Ok((line, row)) => {
                if let Some(line) = line {
                    stdout.push_str(&line);
                    stdout.push('\n');
                }
                rows.push(row);
            }
            Err(e) => {
                failed += 1;
                stderr.push_str(&format!("sysctune: error: {e}\n"));
            }
        }
    }
    let changed = rows.iter().any(|r| r.changed);
    if format == Format::Text {
        stdout = text::fleet(&rows, files.len(), failed, style);
    }
    let code = if failed > 0 {
        2
    } else if args.exit_code && changed {
        1
    } else {
        0
    };
    Ok(Output { stdout, stderr, code })
}

/// `work` on every file, in parallel on every core, the results in the order of the files.
/// Hosts are independent, so a bug (a panic) in one host's planning is an error for that
/// host alone: the others are still planned and reported.
fn for_each_host<T: Send>(
    files: &[PathBuf],
    work: &(dyn Fn(&PathBuf) -> Result<T> + Sync),
) -> Vec<Result<T>> {
    let guarded = |path: &PathBuf| {
        crate::crash::catch(|| work(path)).unwrap_or_else(|panic| {
            Err(Error::input(format!(
                "internal error planning {}: {panic}; please report it",
                path.display()
            )))
        })
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    let chunk = files.len().div_ceil(workers).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|c| (c, s.spawn(move || c.iter().map(guarded).collect::<Vec<_>>())))
            .collect();
        handles
            .into_iter()
            .flat_map(|(c, h)| {
                // Every panic is caught in the worker; should one escape, its hosts fail alone.
                h.join().unwrap_or_else(|_| {
                    c.iter()
                        .map(|p| {
                            Err(Error::input(format!(
                                "internal error planning {}; please report it",
                                p.display()
                            )))
                        })
                        .collect()
                })
            })
            .collect()
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
        let work = |p: &PathBuf| -> Result<String> {
            if p.ends_with("boom.json") {
                panic!("rule x divided by zero");
            }
            Ok(p.display().to_string())
        };
        let results = for_each_host(&files, &work);
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
