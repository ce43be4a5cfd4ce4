//! `sysctune explain TOPIC`: a rule's documentation (what it does, why, its arithmetic,
//! references), found by rule id or by a key the rule manages, or the profile reference.
//! Text only.

use crate::error::{Error, Result};
use crate::{keys, profile, rules};

/// The documentation of a rule, of the rule that manages a key, of a key no rule
/// computes, or of every profile field (`profile`); an error that lists what can be
/// explained otherwise.
pub fn text(topic: &str) -> Result<String> {
    if topic == "profile" {
        return Ok(profile::REFERENCE.to_string());
    }
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
        "nothing to explain for {topic:?}: give a rule ({}), a key one of them manages (e.g. {}), or profile \
         (every profile field)",
        ids.join(", "),
        rules::RULES.iter().flat_map(|r| r.keys()).next().unwrap_or(&"-")
    )))
}

/// `Rule ID — keys: KEY (unit), ...` and the rule's documentation.
fn rule_doc(rule: &dyn rules::Rule) -> String {
    let keys: Vec<String> = rule
        .keys()
        .iter()
        .map(|k| match keys::info(k) {
            Some(i) => format!("{k} ({})", i.unit),
            None => k.to_string(),
        })
        .collect();
    let mut s = format!(
        "Rule {} — keys: {}\n\n{}",
        rule.id(),
        keys.join(", "),
        rule.doc().trim_end()
    );
    s.push('\n');
    s
}
