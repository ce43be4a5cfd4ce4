//! Where knowledge lives: a rule's keys are named only in its rule file (`src/rules/`) and
//! in the key table (`src/keys.rs`). Planning, applying and reporting loop over the rules
//! and ask them (capacity figures, reviews, refusals) or the key table (write order, keys
//! that reset each other, floors), so adding a rule touches its file and its registration.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Files outside `src/rules/` that may still name some of a rule's keys, each with why
/// (any other key named there still fails).
const ALLOWED: &[(&str, &[&str], &str)] = &[
    // Doctor's checks are the other home of kernel knowledge: one file per check, each
    // with the keys it judges (as a rule has its own).
    ("src/doctor/", &["*"], "doctor checks own the keys they judge"),
    (
        "src/cli.rs",
        &[
            "net.ipv4.tcp_mem",
            "vm.overcommit_memory",
            "fs.file-max",
            "fs.file-nr",
            "net.ipv4.ip_local_port_range",
        ],
        "help texts: examples of keys to show and explain, and what doctor's checks read",
    ),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `"net.…"`, `"vm.…"`, `"fs.…"`, `"kernel.…"` literal in `text`.
fn key_literals(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for piece in text.split('"').skip(1).step_by(2) {
        let is_key = ["net.", "vm.", "fs.", "kernel."]
            .iter()
            .any(|p| piece.starts_with(p))
            && piece.len() > 4
            && piece
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if is_key {
            out.insert(piece.to_string());
        }
    }
    out
}

/// The code of a file, its comment lines blanked (line numbers stay), without its test
/// module (everything from the first `#[cfg(test)]` at the start of a line: the
/// convention of this repository).
fn code(text: &str) -> String {
    let end = text.find("\n#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|l| if l.trim_start().starts_with("//") { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where `key` appears in `code` as a whole key (not as the start of a longer one).
fn names(code: &str, key: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut from = 0;
        while let Some(i) = line[from..].find(key) {
            let end = from + i + key.len();
            let next = line[end..].chars().next();
            if !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                lines.push(n + 1);
                break;
            }
            from = end;
        }
    }
    lines
}

#[test]
fn a_rules_keys_are_named_only_in_its_rule_and_the_key_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    files.sort();
    let rel = |p: &Path| p.strip_prefix(root).unwrap().to_string_lossy().into_owned();

    let mut keys = BTreeSet::new();
    for f in files.iter().filter(|f| rel(f).starts_with("src/rules/")) {
        keys.extend(key_literals(&code(&std::fs::read_to_string(f).unwrap())));
    }
    for k in [
        "net.ipv4.tcp_mem",
        "net.ipv4.ip_local_port_range",
        "vm.overcommit_memory",
    ] {
        assert!(keys.contains(k), "the scan of src/rules/ misses {k}: {keys:?}");
    }

    let mut found = Vec::new();
    for f in &files {
        let r = rel(f);
        if r.starts_with("src/rules/") || r == "src/keys.rs" || r.ends_with("/tests.rs") {
            continue;
        }
        let allowed = |k: &str| {
            ALLOWED
                .iter()
                .any(|(prefix, keys, _)| r.starts_with(prefix) && keys.iter().any(|a| *a == "*" || *a == k))
        };
        let text = code(&std::fs::read_to_string(f).unwrap());
        for k in keys.iter().filter(|k| !allowed(k)) {
            for line in names(&text, k) {
                found.push(format!("{r}: line {line} of its code names {k}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a rule's knowledge has leaked out of src/rules/ (ask the rule, or put the fact in keys.rs):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_sees_a_key_and_only_a_whole_key() {
    let text = "let x = \"net.ipv4.tcp_tw_reuse_delay\";\n// \"vm.swappiness\"\nfoo(\"vm.swappiness\");";
    assert_eq!(
        key_literals(text),
        BTreeSet::from([
            "net.ipv4.tcp_tw_reuse_delay".to_string(),
            "vm.swappiness".to_string()
        ])
    );
    let code = code(text);
    assert_eq!(names(&code, "net.ipv4.tcp_tw_reuse"), Vec::<usize>::new());
    assert_eq!(names(&code, "net.ipv4.tcp_tw_reuse_delay"), vec![1]);
    assert_eq!(names(&code, "vm.swappiness"), vec![3], "comments are not code");
    assert_eq!(self::code("a\n#[cfg(test)]\nmod tests { \"vm.x\" }"), "a");
}

/// ARCHITECTURE.md names every module under src/ (a file or a folder of files), so the map
/// a newcomer reads first stays the house.
#[test]
fn the_architecture_page_names_every_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    for e in std::fs::read_dir(root.join("src")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let shown = if p.is_dir() {
            format!("`{name}/`")
        } else {
            format!("`{name}`")
        };
        if name != "lib.rs" && !page.contains(&shown) {
            missing.push(shown);
        }
    }
    for e in std::fs::read_dir(root.join("src/report")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".rs") && name != "mod.rs" && !page.contains(&format!("`{name}`")) {
            missing.push(format!("report/{name}"));
        }
    }
    assert!(missing.is_empty(), "ARCHITECTURE.md does not name {missing:?}");
}
