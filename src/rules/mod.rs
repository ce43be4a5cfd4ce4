//! The rule engine: one file per rule, each a small type implementing [`Rule`],
//! registered once in [`RULES`]. `evaluate` is pure: it sees only [`Context`] (facts and
//! profile), never `/proc`, so every rule is tested with plain values at the bottom of its
//! own file. Each rule's `DOC` is what `sysctune explain RULE` prints.

pub mod code;
pub mod demand;
pub mod file_descriptors;
pub mod oom;
pub mod overcommit;
pub mod port_range;
pub mod swappiness;
pub mod tcp_buffers;
pub mod tcp_memory;

use serde::Serialize;

pub use code::Code;

use crate::host::Facts;
use crate::profile::Profile;

/// What a rule sees. `facts` are the effective facts: the profile's `[host]` overrides
/// (ram, swap, page_size) are already applied.
pub struct Context<'a> {
    pub facts: &'a Facts,
    pub profile: &'a Profile,
    /// Set by `tcp-memory` when it shrank the default buffers to fit; `tcp-buffers` (which
    /// runs after it) uses them as the recommended defaults.
    pub shrink: Option<Shrink>,
}

/// Default buffer sizes (tcp_rmem[1], tcp_wmem[1]) chosen by `tcp-memory` to fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shrink {
    pub rmem: u64,
    pub wmem: u64,
}

/// One recommended value. Emitting it makes the key managed (it appears in the plan and
/// the drop-in), whether or not it differs from the current value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recommendation {
    pub key: String,
    /// In the kernel's format with single spaces (`6094848 8126464 12189696`).
    pub value: String,
    /// One line: why this value (goes into the table and the drop-in's comment).
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// What it is about ([`Code`]); `rule` in the JSON.
    pub rule: Code,
    pub message: String,
    /// The key the finding is about, when there is one (`net.ipv4.tcp_mem`).
    pub key: Option<String>,
    /// The measured figure and the threshold it was judged against, in `unit`, for
    /// alerting without parsing the prose (doctor's findings carry them).
    pub value: Option<u64>,
    pub threshold: Option<u64>,
    pub unit: Option<String>,
}

impl Finding {
    pub fn new(severity: Severity, rule: Code, message: impl Into<String>) -> Self {
        Finding {
            severity,
            rule,
            message: message.into(),
            key: None,
            value: None,
            threshold: None,
            unit: None,
        }
    }

    /// The key the finding is about.
    pub fn measured_key(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }

    /// The figures behind the finding: `value` against `threshold`, in `unit`.
    pub fn measured(mut self, key: Option<&str>, value: u64, threshold: u64, unit: &str) -> Self {
        self.key = key.map(str::to_string);
        self.value = Some(value);
        self.threshold = Some(threshold);
        self.unit = Some(unit.to_string());
        self
    }
}

/// What a rule decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub settings: Vec<Recommendation>,
    pub findings: Vec<Finding>,
    /// The arithmetic, step by step with units, for `plan -v`.
    pub steps: Vec<String>,
    /// Only `tcp-memory`: the shrunk default buffers.
    pub shrink: Option<Shrink>,
}

impl Outcome {
    pub fn set(&mut self, key: &str, value: impl Into<String>, reason: impl Into<String>) {
        self.settings.push(Recommendation {
            key: key.to_string(),
            value: value.into(),
            reason: reason.into(),
        });
    }

    pub fn step(&mut self, line: impl Into<String>) {
        self.steps.push(line.into());
    }

    pub fn finding(&mut self, severity: Severity, rule: Code, message: impl Into<String>) {
        self.findings.push(Finding::new(severity, rule, message));
    }

    /// The info finding of a key this kernel does not have, which the rule leaves alone.
    pub fn absent(&mut self, rule: Code, key: &str) {
        self.finding(
            Severity::Info,
            rule,
            format!("{key} is absent on this kernel; it is not managed."),
        );
    }

    /// Recommend `value` for `key` when this kernel has the key and accepts the value (in
    /// its normal form); else a finding, and the key is not managed. True when set.
    pub fn set_checked(
        &mut self,
        facts: &Facts,
        rule: Code,
        key: &str,
        value: &str,
        reason: impl Into<String>,
    ) -> bool {
        if facts.value(key).is_none() {
            self.absent(rule, key);
            return false;
        }
        match crate::keys::validate(key, value, &facts.kernel) {
            Ok(v) => {
                self.set(key, v, reason);
                true
            }
            Err(e) => {
                self.finding(Severity::Error, rule, format!("{e}; {key} is not managed."));
                false
            }
        }
    }
}

/// How a capacity figure is counted and printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Connections, ports, connections per second: `1 234 567`.
    Count,
    /// `77.8 KiB`.
    Bytes,
    /// Milliseconds, printed `62.048 s`; a JSON number of seconds.
    Millis,
}

/// A capacity figure a rule reports: its JSON name under `capacity`, its label in the
/// plan's text (indented under the figure before it when `sub`), its unit.
#[derive(Debug, PartialEq, Eq)]
pub struct Measure {
    pub name: &'static str,
    pub label: &'static str,
    pub sub: bool,
    pub unit: Unit,
}

impl Measure {
    pub const fn new(name: &'static str, label: &'static str, sub: bool, unit: Unit) -> Self {
        Measure {
            name,
            label,
            sub,
            unit,
        }
    }
}

/// The values a figure is computed from: the host's current ones, or the plan's.
pub type Values<'a> = dyn Fn(&str) -> Option<String> + 'a;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Figure {
    pub current: Option<u64>,
    pub recommended: Option<u64>,
}

/// One capacity figure, from the current values and from the recommended ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub measure: &'static Measure,
    pub figure: Figure,
}

/// Every rule's capacity figures, in rule order: `capacity` in the plan's JSON (an object of
/// `name: {current, recommended}`) and the Capacity table of its text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capacity {
    pub rows: Vec<Row>,
}

impl Capacity {
    /// The figure named `name` (both halves `None` when no rule reports it).
    pub fn get(&self, name: &str) -> Figure {
        self.rows
            .iter()
            .find(|r| r.measure.name == name)
            .map(|r| r.figure)
            .unwrap_or_default()
    }
}

impl Serialize for Capacity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct Seconds {
            current: Option<f64>,
            recommended: Option<f64>,
        }
        let secs = |v: Option<u64>| v.map(|ms| ms as f64 / 1000.0);
        let mut m = s.serialize_map(Some(self.rows.len()))?;
        for r in &self.rows {
            match r.measure.unit {
                Unit::Millis => m.serialize_entry(
                    r.measure.name,
                    &Seconds {
                        current: secs(r.figure.current),
                        recommended: secs(r.figure.recommended),
                    },
                )?,
                Unit::Count | Unit::Bytes => m.serialize_entry(r.measure.name, &r.figure)?,
            }
        }
        m.end()
    }
}

/// What would break the host at once if the plan were carried out now (a tcp_mem high
/// below what TCP holds, strict overcommit below Committed_AS, a range narrower than the
/// ports in use): the plan shows it as an error finding, and apply refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hazard {
    pub key: &'static str,
    pub message: String,
}

/// The most local ports one destination holds now in `lo..=hi` less the reserved ranges,
/// from the tcp tables (a scan of every socket); `None` where there are no tables to read
/// (a snapshot).
pub type PortsHeld<'a> = dyn Fn(u32, u32, &[(u32, u32)]) -> crate::error::Result<Option<u64>> + 'a;

/// What a rule judges for its hazards: the plan's values against the host as it is.
pub struct Proposal<'a> {
    /// The facts as read, before the profile's `[host]`.
    pub facts: &'a Facts,
    /// A key's recommended value, when the plan manages it, and whether that changes it.
    pub setting: &'a dyn Fn(&str) -> Option<(String, bool)>,
    pub capacity: &'a Capacity,
    /// Read only when a rule asks.
    pub ports_held: &'a PortsHeld<'a>,
}

pub trait Rule: Sync {
    /// Its code: the `rule` of its findings and settings.
    fn code(&self) -> Code;
    /// Stable kebab-case id (`tcp-memory`): its code's name.
    fn id(&self) -> &'static str {
        self.code().as_str()
    }
    /// The keys this rule may manage.
    fn keys(&self) -> &'static [&'static str];
    /// What it does, why, its arithmetic, references: printed by `sysctune explain`.
    fn doc(&self) -> &'static str;
    fn evaluate(&self, ctx: &Context) -> Outcome;
    /// Its capacity figures, computed from `values` (the host's current ones, then the
    /// plan's final ones, pins included): each figure once, in the order of the text.
    fn capacity(&self, _ctx: &Context, _values: &Values) -> Vec<(&'static Measure, Option<u64>)> {
        Vec::new()
    }
    /// Findings on the plan as a whole, once its final values and capacity are known.
    fn review(&self, _ctx: &Context, _capacity: &Capacity) -> Vec<Finding> {
        Vec::new()
    }
    /// What would break the host now if apply carried the plan out ([`Hazard`]).
    fn hazards(&self, _p: &Proposal) -> crate::error::Result<Vec<Hazard>> {
        Ok(Vec::new())
    }
}

/// Every rule, in evaluation order (`tcp-memory` before `tcp-buffers`: it may shrink the
/// default buffers).
pub const RULES: &[&dyn Rule] = &[
    &tcp_memory::TcpMemory,
    &tcp_buffers::TcpBuffers,
    &port_range::PortRange,
    &overcommit::Overcommit,
    &swappiness::Swappiness,
    &oom::Oom,
    &file_descriptors::FileDescriptors,
];

pub fn find(id: &str) -> Option<&'static dyn Rule> {
    RULES.iter().copied().find(|r| r.id() == id)
}

/// The rule that manages `key`, for `sysctune explain KEY`.
pub fn for_key(key: &str) -> Option<&'static dyn Rule> {
    RULES.iter().copied().find(|r| r.keys().contains(&key))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Plain-value facts and profiles for the rules' unit tests.
    use std::collections::BTreeMap;

    use crate::host::{Facts, MemInfo};
    use crate::profile::Profile;

    /// A host like the article's proxy: 62 GiB, no swap, kernel 3.10, the old defaults.
    pub fn proxy_host() -> Facts {
        let ram: u64 = 62 << 30;
        let mut sysctl = BTreeMap::new();
        for (k, v) in [
            ("net.ipv4.tcp_mem", "6179424 8239232 12358848"),
            ("net.ipv4.tcp_rmem", "4096 87380 16777216"),
            ("net.ipv4.tcp_wmem", "4096 65536 16777216"),
            ("net.core.rmem_max", "212992"),
            ("net.core.wmem_max", "212992"),
            ("net.ipv4.ip_local_port_range", "32768 60999"),
            ("net.ipv4.ip_local_reserved_ports", ""),
            ("net.ipv4.ip_unprivileged_port_start", "1024"),
            ("net.ipv4.tcp_tw_reuse", "2"),
            ("net.ipv4.tcp_max_orphans", "262144"),
            ("vm.overcommit_memory", "0"),
            ("vm.overcommit_ratio", "50"),
            ("vm.overcommit_kbytes", "0"),
            ("vm.swappiness", "60"),
            ("vm.panic_on_oom", "0"),
            ("kernel.panic", "0"),
            ("fs.file-max", "6500000"),
            ("fs.nr_open", "1048576"),
            ("fs.file-nr", "2048 0 6500000"),
        ] {
            sysctl.insert(k.to_string(), Some(v.to_string()));
        }
        Facts {
            hostname: Some("proxy".into()),
            kernel: "3.10.0".into(),
            page_size: 4096,
            mem: MemInfo {
                mem_total: ram,
                swap_total: 0,
                hugetlb: 0,
                commit_limit: ram / 2,
                committed_as: 20 << 30,
                mem_available: Some(40 << 30),
            },
            sysctl,
            sockstat: None,
            hz: None,
            warnings: vec![],
        }
    }

    /// Set (or with `None`, remove) a live value.
    pub fn with(mut facts: Facts, key: &str, value: Option<&str>) -> Facts {
        facts.sysctl.insert(key.to_string(), value.map(str::to_string));
        facts
    }

    /// Evaluate `rule` and check what every rule must hold: each value is one the kernel
    /// accepts (in its normal form), each reason and finding is one non-empty line, and
    /// every finding carries the rule's id.
    pub fn evaluate_checked(
        rule: &dyn super::Rule,
        facts: &Facts,
        profile: &Profile,
        shrink: Option<super::Shrink>,
    ) -> super::Outcome {
        let out = rule.evaluate(&super::Context {
            facts,
            profile,
            shrink,
        });
        for s in &out.settings {
            assert_eq!(
                crate::keys::validate(&s.key, &s.value, &facts.kernel).as_deref(),
                Ok(s.value.as_str()),
                "{s:?}"
            );
            assert!(!s.reason.contains('\n') && !s.reason.is_empty(), "{s:?}");
        }
        for f in &out.findings {
            assert!(!f.message.contains('\n') && !f.message.is_empty(), "{f:?}");
            assert_eq!(f.rule, rule.code(), "{f:?}");
        }
        out
    }

    /// [`evaluate_checked`] with reasons short enough for a table (at most 70 characters).
    pub fn evaluate_short(rule: &dyn super::Rule, facts: &Facts, toml_body: &str) -> super::Outcome {
        let out = evaluate_checked(rule, facts, &profile(toml_body), None);
        for s in &out.settings {
            assert!(s.reason.chars().count() <= 70, "reason too long: {:?}", s.reason);
        }
        out
    }

    /// A profile from TOML text (the `name` line is added).
    pub fn profile(toml_body: &str) -> Profile {
        crate::profile::parse_for_tests(&format!("name = \"test\"\n{toml_body}"))
    }

    #[test]
    fn every_capacity_figure_has_one_name_and_the_same_rows_whatever_the_values() {
        let facts = proxy_host();
        let profile = profile("[connections]\nconcurrent = 1000\n[outbound]\nnew_per_second = 100\n");
        let ctx = super::Context {
            facts: &facts,
            profile: &profile,
            shrink: None,
        };
        let live = |k: &str| facts.value(k).map(str::to_string);
        let mut names = std::collections::BTreeSet::new();
        for rule in super::RULES {
            let with: Vec<&str> = rule.capacity(&ctx, &live).iter().map(|(m, _)| m.name).collect();
            let without: Vec<&str> = rule
                .capacity(&ctx, &|_| None)
                .iter()
                .map(|(m, _)| m.name)
                .collect();
            assert_eq!(
                with,
                without,
                "{}: the plan pairs current and recommended rows by position",
                rule.id()
            );
            for n in with {
                assert!(names.insert(n), "capacity.{n} is reported twice");
            }
        }
        assert_eq!(names.len(), 11, "{names:?}");
    }
}
