//! Rule `oom`: what the kernel does when memory runs out. See [`DOC`].

use crate::profile::OnOom;

use super::{Code, Context, Outcome, Rule};

pub const DOC: &str = "\
What it does
  From the profile's memory.on_oom:
  kill  -> vm.panic_on_oom = 0: on out-of-memory the OOM killer ends a process and the
           host keeps running.
  panic -> vm.panic_on_oom = 1: a system-wide out-of-memory panics the kernel; and when
           kernel.panic is 0 (a panicked host hangs until someone resets it),
           kernel.panic = 10 so the host reboots after 10 seconds and its peers take over.
  Without the input the rule says nothing.

Why
  The article's batch host met the OOM killer under high concurrency. It notes that
  vm.panic_on_oom = 1 makes the system panic instead, and that this is not advised in
  production: when memory runs out, fix the program (there: short connections that piled
  up; the cure was keep-alive and a connection pool) or add memory. Panicking only makes
  sense on a node of a cluster that fails over, where a clean reboot beats a host limping
  on with a random process killed; and then only if the host actually reboots, which
  needs kernel.panic > 0.

Arithmetic
  None: panic_on_oom = 0 (kill) or 1 (panic); kernel.panic = 10 seconds when it is 0.

Choices
  - vm.panic_on_oom is managed whenever memory.on_oom is given, even when unchanged.
  - With \"panic\", kernel.panic is always managed: 0 becomes 10, any other value (a host
    that already reboots after a panic; negative reboots at once) is kept as it is. It is
    managed even when kept so the drop-in holds it: otherwise, once applied, the drop-in
    would lose it and the next boot would bring back 0, a host that hangs. \"kill\" leaves
    it alone.
  - \"panic\" uses mode 1, not 2: mode 1 panics only when the whole system is out of
    memory; an OOM inside a cgroup, cpuset or memory policy still kills a process there,
    which is what a container limit means.
  - When kernel.panic is absent, an info finding says it is not managed.

References
  Documentation/admin-guide/sysctl/vm.rst (panic_on_oom);
  Documentation/admin-guide/sysctl/kernel.rst (panic); mm/oom_kill.c: out_of_memory(),
  check_panic_on_oom() (1: panic unless the OOM is confined to a cgroup, cpuset or
  mempolicy; 2: always); kernel/panic.c: panic() (reboots after kernel.panic seconds
  when it is above 0); the article
  (\"panic_on_oom ... production systems are not advised to; fix the program or add
  memory\").
";

const PANIC_ON_OOM: &str = "vm.panic_on_oom";
const PANIC: &str = "kernel.panic";
/// Seconds before a panicked host reboots.
const REBOOT_AFTER: u32 = 10;

pub struct Oom;

impl Rule for Oom {
    fn code(&self) -> Code {
        Code::Oom
    }

    fn keys(&self) -> &'static [&'static str] {
        &[PANIC_ON_OOM, PANIC]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, ctx: &Context) -> Outcome {
        let mut out = Outcome::default();
        let id = self.code();
        let facts = ctx.facts;
        match ctx.profile.memory.on_oom {
            None => {}
            Some(OnOom::Kill) => {
                out.step("memory.on_oom = kill → vm.panic_on_oom = 0");
                out.set_checked(
                    facts,
                    id,
                    PANIC_ON_OOM,
                    "0",
                    "kill a process on OOM; panicking is not advised in production",
                );
            }
            Some(OnOom::Panic) => {
                out.step("memory.on_oom = panic → vm.panic_on_oom = 1 (system-wide OOM only)");
                out.set_checked(
                    facts,
                    id,
                    PANIC_ON_OOM,
                    "1",
                    "panic on system-wide OOM, so the host fails over (see DOC)",
                );
                match facts.int(PANIC) {
                    Some(0) => {
                        out.step(format!(
                            "kernel.panic = 0 (a panicked host hangs) → {REBOOT_AFTER} s: reboot and fail over"
                        ));
                        out.set_checked(
                            facts,
                            id,
                            PANIC,
                            &REBOOT_AFTER.to_string(),
                            "reboot 10 s after the OOM panic instead of hanging",
                        );
                    }
                    Some(secs) => {
                        // Kept, but managed: once sysctune set 10, dropping it from the drop-in
                        // would let the next boot bring back 0 (a hang).
                        out.step(format!(
                            "kernel.panic = {secs}: the host already reboots after a panic; kept"
                        ));
                        out.set_checked(
                            facts,
                            id,
                            PANIC,
                            &secs.to_string(),
                            "already reboots after a panic; kept so it survives a reboot",
                        );
                    }
                    None if facts.value(PANIC).is_none() => out.absent(id, PANIC),
                    None => out.step(format!(
                        "kernel.panic = {:?} is not an integer; not managed",
                        facts.value(PANIC).unwrap_or("")
                    )),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Outcome, Severity};
    use super::*;
    use crate::host::Facts;

    fn run(facts: &Facts, toml: &str) -> Outcome {
        evaluate_short(&Oom, facts, toml)
    }

    fn settings(out: &Outcome) -> Vec<(&str, &str)> {
        out.settings
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str()))
            .collect()
    }

    #[test]
    fn no_input_no_settings() {
        assert_eq!(run(&proxy_host(), ""), Outcome::default());
    }

    #[test]
    fn kill_is_zero_and_leaves_kernel_panic() {
        let out = run(&proxy_host(), "[memory]\non_oom = \"kill\"");
        assert_eq!(settings(&out), [("vm.panic_on_oom", "0")]);
        assert!(out.settings[0].reason.contains("not advised"));
        assert!(out.findings.is_empty());
        // from panic back to kill
        let facts = with(proxy_host(), "vm.panic_on_oom", Some("1"));
        let out = run(&facts, "[memory]\non_oom = \"kill\"");
        assert_eq!(settings(&out), [("vm.panic_on_oom", "0")]);
    }

    #[test]
    fn panic_sets_a_reboot_when_kernel_panic_is_zero() {
        let out = run(&proxy_host(), "[memory]\non_oom = \"panic\"");
        assert_eq!(settings(&out), [("vm.panic_on_oom", "1"), ("kernel.panic", "10")]);
        assert!(out.findings.is_empty());
    }

    #[test]
    fn panic_keeps_an_existing_reboot() {
        for secs in ["30", "-1"] {
            let facts = with(proxy_host(), "kernel.panic", Some(secs));
            let out = run(&facts, "[memory]\non_oom = \"panic\"");
            assert_eq!(
                settings(&out),
                [("vm.panic_on_oom", "1"), ("kernel.panic", secs)],
                "{secs}"
            );
        }
    }

    #[test]
    fn absent_keys() {
        let facts = with(proxy_host(), "kernel.panic", None);
        let out = run(&facts, "[memory]\non_oom = \"panic\"");
        assert_eq!(settings(&out), [("vm.panic_on_oom", "1")]);
        assert_eq!(out.findings.len(), 1);
        assert_eq!(out.findings[0].severity, Severity::Info);
        assert!(out.findings[0].message.contains("kernel.panic is absent"));

        let facts = with(with(proxy_host(), "kernel.panic", None), "vm.panic_on_oom", None);
        for mode in ["kill", "panic"] {
            let out = run(&facts, &format!("[memory]\non_oom = \"{mode}\""));
            assert!(out.settings.is_empty());
            assert!(out.findings.iter().all(|f| f.severity == Severity::Info));
            assert!(!out.findings.is_empty());
        }
    }

    #[test]
    fn doc_has_the_sections() {
        for s in ["What it does", "Why", "Arithmetic", "Choices", "References"] {
            assert!(DOC.contains(s), "{s}");
        }
        assert!(DOC.contains("not advised in"));
    }
}
