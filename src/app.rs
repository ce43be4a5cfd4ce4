//! The commands: read the host, plan, render. `main` only parses flags and maps the
//! result to an exit code.

use std::path::{Path, PathBuf};

use crate::cli::{ApplyArgs, Cli, Command, Format, PlanArgs, ProfilesAction, StateArgs};
use crate::error::{Error, Result};
use crate::report::{self, Style, text};
use crate::{apply, doctor, host, keys, plan, profile, rules};

/// What a command printed and the exit code it wants.
pub struct Output {
    pub stdout: String,
    pub code: i32,
}

impl Output {
    fn ok(stdout: String) -> Self {
        Output { stdout, code: 0 }
    }
}

pub fn run(cli: &Cli) -> Result<Output> {
    let g = &cli.global;
    let style = Style::detect(g.color.as_str());
    match &cli.command {
        Command::Show { keys: wanted } => show(&g.root, g.format, wanted, &style),
        Command::Plan(args) => {
            let (plan, _) = make_plan(&g.root, args)?;
            let code = if args.exit_code && plan.changed { 1 } else { 0 };
            let stdout = match g.format {
                Format::Json => report::json(&plan),
                Format::Text => text::plan(&plan, &style, g.verbose),
            };
            Ok(Output { stdout, code })
        }
        Command::Apply(args) if args.dry_run => {
            let (plan, _) = make_plan(&g.root, &args.plan)?;
            let code = if args.plan.exit_code && plan.changed { 1 } else { 0 };
            let stdout = match g.format {
                Format::Json => report::json(&plan),
                Format::Text => text::plan(&plan, &style, g.verbose),
            };
            Ok(Output { stdout, code })
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
    let plan = plan::plan(&plan::Request {
        facts: &facts,
        profile: &profile,
        only: &args.only,
        dropin_path: &shown,
        dropin_current: current.as_deref(),
    })?;
    Ok((plan, facts))
}

fn show(root: &Path, format: Format, wanted: &[String], style: &Style) -> Result<Output> {
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
            let list: Vec<&String> = if canonical.is_empty() {
                facts.sysctl.keys().collect()
            } else {
                canonical.iter().collect()
            };
            let mut list = list;
            list.sort_by(|a, b| keys::order(a).cmp(&keys::order(b)).then(a.cmp(b)));
            let keys_json: Vec<_> = list
                .iter()
                .map(|k| serde_json::json!({"key": k, "live": facts.sysctl.get(k.as_str()).cloned().flatten()}))
                .collect();
            report::json(&serde_json::json!({
                "schema": "sysctune/show/v1",
                "host": host,
                "keys": keys_json,
                "warnings": facts.warnings,
            }))
        }
        Format::Text => text::show(&facts, &canonical, style),
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
