//! Snapshots and offline planning: a plan from a snapshot is the plan on the host; a fleet
//! is planned one host per line; a broken snapshot is named and does not stop the others.

mod common;

use common::{root, scrub, sysctune};
use serde_json::Value;

fn snapshot_of(root_name: &str) -> String {
    let r = root(root_name).display().to_string();
    let run = sysctune(&["--root", &r, "snapshot"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
}

const CASES: &[(&str, &str)] = &[
    ("article-proxy", "tests/profiles/article-proxy.toml"),
    ("article-batch", "batch-client"),
    ("modern", "reverse-proxy"),
    ("modern", "web-server"),
    ("strict-over-limit", "database"),
    ("precedence", "web-server"),
];

#[test]
fn a_plan_from_a_snapshot_is_the_plan_on_the_host() {
    let dir = tempfile::tempdir().unwrap();
    for (root_name, profile) in CASES {
        let file = dir.path().join(format!("{root_name}.json"));
        std::fs::write(&file, snapshot_of(root_name)).unwrap();
        let r = root(root_name).display().to_string();
        let f = file.display().to_string();
        let on_host = sysctune(&["--root", &r, "plan", "--profile", profile, "--format", "json"]);
        let offline = sysctune(&["plan", "--profile", profile, "--snapshot", &f, "--format", "json"]);
        assert_eq!(on_host.code, 0, "{}", on_host.stderr);
        assert_eq!(offline.code, 0, "{}", offline.stderr);
        let mut a: Value = serde_json::from_str(&on_host.stdout).unwrap();
        let mut b: Value = serde_json::from_str(&offline.stdout).unwrap();
        // The one difference: the host's apply names its root, the snapshot's is run on the host.
        assert_eq!(
            a["apply_command"],
            format!("sysctune --root {r} apply --profile {profile}")
        );
        assert_eq!(b["apply_command"], format!("sysctune apply --profile {profile}"));
        a["apply_command"] = Value::Null;
        b["apply_command"] = Value::Null;
        assert_eq!(a, b, "{root_name} with {profile}: the offline plan differs");
        // and the text, too
        let on_host = sysctune(&["--root", &r, "--color", "never", "plan", "--profile", profile]);
        let offline = sysctune(&["--color", "never", "plan", "--profile", profile, "--snapshot", &f]);
        let root_flag = format!("sysctune --root {r} apply");
        assert_eq!(
            on_host.stdout.replace(&root_flag, "sysctune apply"),
            offline.stdout,
            "{root_name}"
        );
    }
}

#[test]
fn snapshots_are_deterministic_and_self_describing() {
    let a = snapshot_of("precedence");
    assert_eq!(a, snapshot_of("precedence"));
    let v: Value = serde_json::from_str(&a).unwrap();
    assert_eq!(v["schema"], "sysctune/snapshot/v1");
    assert_eq!(v["host"]["name"], "precedence-1");
    assert_eq!(v["host"]["kernel"], "6.18.44");
    assert!(v["host"]["page_size"].as_u64().unwrap() >= 4096);
    assert_eq!(v["sysctl"]["net.ipv4.tcp_mem"], "287898 383867 575796");
    let files = v["sysctl_d"]["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f["kind"] == "mask"), "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f["content"].as_str().is_some_and(|c| c.contains("vm.swappiness")))
    );
    // A fixed field order in the text itself.
    let positions: Vec<usize> = [
        "schema", "host", "meminfo", "sockstat", "sysctl", "sysctl_d", "warnings",
    ]
    .iter()
    .map(|k| {
        a.find(&format!("\n  \"{k}\":"))
            .unwrap_or_else(|| panic!("no top-level {k}"))
    })
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

#[test]
fn a_fleet_is_planned_host_by_host_and_a_broken_snapshot_is_named() {
    let dir = tempfile::tempdir().unwrap();
    for (root_name, _) in &CASES[..3] {
        std::fs::write(
            dir.path().join(format!("{root_name}.json")),
            snapshot_of(root_name),
        )
        .unwrap();
    }
    let good = snapshot_of("modern");
    std::fs::write(dir.path().join("truncated.json"), &good[..good.len() / 2]).unwrap();
    std::fs::write(
        dir.path().join("corrupt.json"),
        good.replace("sysctune/snapshot/v1", "something/else"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("evil.json"),
        good.replace("\"net.ipv4.tcp_mem\"", "\"net/../../etc/passwd\""),
    )
    .unwrap();
    let d = dir.path().display().to_string();

    let run = sysctune(&[
        "plan",
        "--profile",
        "reverse-proxy",
        "--snapshot",
        &d,
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 2, "one snapshot failed: exit 2");
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // A failed host is a line of its own with `error`, so lines match hosts.
    let hosts: Vec<&str> = lines.iter().filter_map(|p| p["host"]["name"].as_str()).collect();
    assert_eq!(hosts, ["batch-a", "ats-proxy-1", "modern-1"]);
    let failed = lines.iter().filter(|p| p["error"].is_string()).count();
    assert_eq!(failed + hosts.len(), lines.len());
    assert!(failed >= 1);
    assert!(lines.iter().all(|p| p["schema"] == "sysctune/plan/v1"));
    let err = run.stderr.replace(&d, "[DIR]");
    insta::assert_snapshot!("fleet-errors", err);

    let text = sysctune(&[
        "--color",
        "never",
        "plan",
        "--profile",
        "reverse-proxy",
        "--snapshot",
        &d,
    ]);
    assert_eq!(text.code, 2);
    insta::assert_snapshot!("fleet-text", text.stdout.replace(&d, "[DIR]"));

    // Without the broken ones: --exit-code says changes are pending.
    for f in ["truncated.json", "corrupt.json", "evil.json"] {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    let ok = sysctune(&[
        "plan",
        "--profile",
        "reverse-proxy",
        "--snapshot",
        &d,
        "--format",
        "json",
        "--exit-code",
    ]);
    assert_eq!(ok.code, 1, "{}", ok.stderr);
    assert!(ok.stderr.is_empty());
}

#[test]
fn a_single_broken_snapshot_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("host.json");
    std::fs::write(&f, "{\"schema\": \"sysctune/snapshot/v1\", \"host\": ").unwrap();
    let p = f.display().to_string();
    let run = sysctune(&["plan", "--profile", "reverse-proxy", "--snapshot", &p]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty());
    insta::assert_snapshot!("single-truncated", scrub(&run.stderr.replace(&p, "[FILE]")));
    let missing = sysctune(&[
        "plan",
        "--profile",
        "reverse-proxy",
        "--snapshot",
        "/nonexistent/host.json",
    ]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("/nonexistent/host.json: no such file"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_snapshot_carries_the_kernels_hz_and_older_ones_still_load() {
    // article-batch has /boot/config-RELEASE (CONFIG_HZ=1000); modern has none.
    let batch = snapshot_of("article-batch");
    let v: Value = serde_json::from_str(&batch).unwrap();
    assert_eq!(v["host"]["hz"], 1000);
    let modern: Value = serde_json::from_str(&snapshot_of("modern")).unwrap();
    assert!(modern["host"].get("hz").is_none(), "{}", modern["host"]);

    // A snapshot taken before hz was recorded loads, and plans as a host with no config.
    let dir = tempfile::tempdir().unwrap();
    let mut old = v.clone();
    old["host"].as_object_mut().unwrap().remove("hz");
    let f = dir.path().join("old.json");
    std::fs::write(&f, serde_json::to_string_pretty(&old).unwrap()).unwrap();
    let f = f.display().to_string();
    let run = sysctune(&[
        "plan",
        "--profile",
        "batch-client",
        "--snapshot",
        &f,
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let mut bad = v;
    bad["host"]["hz"] = Value::from(0);
    let b = dir.path().join("bad.json");
    std::fs::write(&b, serde_json::to_string_pretty(&bad).unwrap()).unwrap();
    let b = b.display().to_string();
    let run = sysctune(&["plan", "--profile", "batch-client", "--snapshot", &b]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("host.hz 0 is not a tick rate"),
        "{}",
        run.stderr
    );
}

/// A fleet streams: a failed host is still one JSON line (lines match hosts), the paths
/// can come from stdin or a list file, and --output-dir writes each host's drop-in.
#[test]
fn a_fleet_streams_one_line_per_host() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, (root_name, _)) in CASES.iter().enumerate() {
        let file = dir.path().join(format!("host{i}.json"));
        std::fs::write(&file, snapshot_of(root_name)).unwrap();
        paths.push(file);
        if i == 0 {
            let broken = dir.path().join("broken.json");
            std::fs::write(&broken, "{\"schema\": \"sysctune/snapshot/v1\"").unwrap();
            paths.push(broken);
        }
    }
    let list = dir.path().join("hosts.txt");
    std::fs::write(
        &list,
        paths
            .iter()
            .map(|p| p.display().to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let out = dir.path().join("repo");
    let at = format!("@{}", list.display());
    let o = out.display().to_string();
    let r = sysctune(&[
        "plan",
        "--profile",
        "web-server",
        "--snapshot",
        &at,
        "--output-dir",
        &o,
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 2, "one host failed: {}", r.stderr);
    let lines: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), paths.len(), "{}", r.stdout);
    assert!(
        lines[1]["error"].as_str().unwrap().contains("broken.json"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[1]["host"]["snapshot"], paths[1].display().to_string());
    assert!(lines[0]["settings"].is_array());
    assert!(r.stderr.contains("broken.json"), "{}", r.stderr);
    let dropin = out.join("host0/etc/sysctl.d/90-sysctune.conf");
    assert_eq!(
        std::fs::read_to_string(&dropin).unwrap(),
        lines[0]["dropin"]["content"].as_str().unwrap()
    );
    // The same list from stdin.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sysctune"))
        .args([
            "plan",
            "--profile",
            "web-server",
            "--snapshot",
            "-",
            "--format",
            "json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(std::fs::read(&list).unwrap().as_slice())
        .unwrap();
    let piped = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&piped.stdout), r.stdout);
}
