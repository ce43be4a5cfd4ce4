//! The commands: read the host, plan, render. `main` only parses flags and maps the
//! result to an exit code.

use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command, Format, PlanArgs, ProfilesAction};
use crate::error::{Error, Result};
use crate::report::{self, Style, text};
use crate::{host, keys, plan, profile, rules};

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
    let p = Path::new(dropin);
    if !p.is_absolute() {
        return Err(Error::input(format!(
            "--dropin {dropin:?}: give an absolute path as seen inside the root, e.g. {}",
            plan::DEFAULT_DROPIN
        )));
    }
    if p.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
        || dropin.chars().any(char::is_control)
    {
        return Err(Error::input(format!(
            "--dropin {dropin:?}: '..' and control characters are not allowed"
        )));
    }
    let rel = p.strip_prefix("/").unwrap_or(p);
    Ok((dropin.to_string(), root.join(rel)))
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
