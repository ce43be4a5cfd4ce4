//! Rule `swappiness`: vm.swappiness from the profile. See [`DOC`].

use crate::host::Facts;
use crate::keys;

use super::{Code, Context, Outcome, Rule, Severity};

pub const DOC: &str = "\
What it does
  Sets vm.swappiness to the profile's memory.swappiness. The key is managed whenever the
  profile gives the value, even when the host already has it, so the drop-in keeps it
  across reboots. Without the input the rule says nothing.

Why
  vm.swappiness is the relative cost the kernel's reclaim gives to swapping anonymous
  memory versus dropping file cache (0..100 before Linux 5.8, 0..200 since; default 60).
  The article's host ran out of memory with no swap; the fix added swap and set
  vm.swappiness = 10, the value the built-in server profiles (and TuneD's
  throughput-performance and latency-performance profiles) use: keep the processes'
  memory in RAM and reclaim cache first, but let swap absorb a burst rather than call the
  OOM killer.

Arithmetic
  vm.swappiness = memory.swappiness. No arithmetic; the range is checked against the
  kernel release (0..=200 from 5.8, 0..=100 before).

Choices
  - With the input and no swap (SwapTotal 0), an info finding: swappiness has no effect
    without swap, and under memory pressure, once the cache is dropped, the OOM killer
    acts at once. The value is still managed, so it applies when swap is added.
  - The plan validates the range against the kernel before the rules run; should a value
    out of range reach the rule anyway, it is not recommended and an error says why.

References
  mm/vmscan.c: get_scan_count() (swappiness weighs anonymous against file pages; without
  swap anonymous pages are not scanned whatever the value); the range 0..=100, 0..=200
  since 5.8 (kernel/sysctl.c, vm_swappiness); Documentation/admin-guide/sysctl/vm.rst
  (swappiness); the article (\"added
  swap; /proc/sys/vm/swappiness 10\").
";

const KEY: &str = "vm.swappiness";

pub struct Swappiness;

impl Rule for Swappiness {
    fn code(&self) -> Code {
        Code::Swappiness
    }

    fn keys(&self) -> &'static [&'static str] {
        &[KEY]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, ctx: &Context) -> Outcome {
        let mut out = Outcome::default();
        let id = self.code();
        let facts = ctx.facts;
        let Some(wanted) = ctx.profile.memory.swappiness else {
            return out;
        };

        let max = keys::swappiness_max(&facts.kernel);
        out.step(format!(
            "vm.swappiness = memory.swappiness = {wanted} (valid 0..={max} on kernel {})",
            facts.kernel
        ));
        let reason = match facts.int(KEY) {
            Some(cur) if cur == wanted as i128 => format!("memory.swappiness = {wanted}; already set"),
            Some(cur) => format!("memory.swappiness = {wanted} (was {cur})"),
            None => format!("memory.swappiness = {wanted}"),
        };
        emit(&mut out, facts, id, wanted, reason);

        if facts.mem.swap_total == 0 {
            out.finding(
                Severity::Info,
                id,
                format!(
                    "no swap: vm.swappiness = {wanted} has no effect without swap, and under memory pressure the OOM killer acts at once (no anonymous memory can be paged out); add swap, as the article did, if bursts should page out instead."
                ),
            );
        }
        out
    }
}

fn emit(out: &mut Outcome, facts: &Facts, id: Code, wanted: u32, reason: String) {
    if facts.value(KEY).is_none() {
        out.absent(id, KEY);
        return;
    }
    match keys::validate(KEY, &wanted.to_string(), &facts.kernel) {
        Ok(v) => out.set(KEY, v, reason),
        Err(e) => out.finding(
            Severity::Error,
            id,
            format!(
                "memory.swappiness: {e} (kernel {}); {KEY} is not managed.",
                facts.kernel
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Outcome, Severity};
    use super::*;

    fn run(facts: &Facts, toml: &str) -> Outcome {
        evaluate_short(&Swappiness, facts, toml)
    }

    #[test]
    fn sets_the_value() {
        let mut facts = proxy_host();
        facts.mem.swap_total = 4 << 30;
        let out = run(&facts, "[memory]\nswappiness = 10");
        assert_eq!(out.settings.len(), 1);
        assert_eq!(out.settings[0].key, "vm.swappiness");
        assert_eq!(out.settings[0].value, "10");
        assert!(out.settings[0].reason.contains("was 60"));
        assert!(out.findings.is_empty());
    }

    #[test]
    fn managed_when_unchanged() {
        let mut facts = with(proxy_host(), "vm.swappiness", Some("10"));
        facts.mem.swap_total = 4 << 30;
        let out = run(&facts, "[memory]\nswappiness = 10");
        assert_eq!(out.settings[0].value, "10");
        assert!(out.settings[0].reason.contains("already set"));
    }

    #[test]
    fn no_input_no_setting() {
        assert_eq!(run(&proxy_host(), ""), Outcome::default());
    }

    #[test]
    fn no_swap_is_an_info() {
        // the article's proxy host has no swap
        let out = run(&proxy_host(), "[memory]\nswappiness = 10");
        assert_eq!(out.settings[0].value, "10");
        assert_eq!(out.findings.len(), 1);
        assert_eq!(out.findings[0].severity, Severity::Info);
        assert!(out.findings[0].message.starts_with("no swap:"));
        assert!(out.findings[0].message.contains("OOM killer"));
    }

    #[test]
    fn range_follows_the_kernel() {
        let mut facts = proxy_host();
        facts.mem.swap_total = 1 << 30;
        // 3.10: 0..=100, so 150 is not recommended (the plan refuses it earlier)
        let out = run(&facts, "[memory]\nswappiness = 150");
        assert!(out.settings.is_empty());
        assert_eq!(out.findings[0].severity, Severity::Error);
        // 6.1: 0..=200
        facts.kernel = "6.1.0".into();
        let out = run(&facts, "[memory]\nswappiness = 150");
        assert_eq!(out.settings[0].value, "150");
        let out = run(&facts, "[memory]\nswappiness = 0");
        assert_eq!(out.settings[0].value, "0");
    }

    #[test]
    fn absent_key() {
        let facts = with(proxy_host(), "vm.swappiness", None);
        let out = run(&facts, "[memory]\nswappiness = 10");
        assert!(out.settings.is_empty());
        assert!(
            out.findings
                .iter()
                .any(|f| f.severity == Severity::Info && f.message.contains("absent"))
        );
    }

    #[test]
    fn doc_has_the_sections() {
        for s in ["What it does", "Why", "Arithmetic", "Choices", "References"] {
            assert!(DOC.contains(s), "{s}");
        }
    }
}
