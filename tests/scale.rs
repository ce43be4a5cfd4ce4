//! Big inputs plan in time linear in their size. No timing is asserted (the machines are
//! noisy): a quadratic version of these takes minutes, so it fails by not finishing.
//! bench/scale.sh prints the figures for the release binary.

mod common;

use common::{copy_root, root, sysctune};
use serde_json::{Value, json};
use sysctune::dropin;

const PINS: usize = 20_000;
const FILES: usize = 100_000;

#[test]
fn twenty_thousand_pins() {
    let dir = copy_root("modern");
    let r = dir.path().display().to_string();
    let kernel = dir.path().join("proc/sys/kernel");
    let mut profile = String::from("name = \"many-pins\"\n[sysctl]\n");
    let mut lines = Vec::new();
    // One file linked 20 000 times: creating 20 000 files costs seconds on a busy disk.
    let zero = dir.path().join("zero");
    std::fs::write(&zero, "0\n").unwrap();
    for i in 0..PINS {
        std::fs::hard_link(&zero, kernel.join(format!("sysctune_test_{i}"))).unwrap();
        profile.push_str(&format!("\"kernel.sysctune_test_{i}\" = \"{i}\"\n"));
        lines.push(dropin::Line {
            key: format!("kernel.sysctune_test_{i}"),
            value: i.to_string(),
            comment: "pin: pinned in the profile's [sysctl] table".into(),
        });
    }
    let p = dir.path().join("pins.toml");
    std::fs::write(&p, profile).unwrap();
    // In the plan's order: by key, as text.
    lines.sort_by(|a, b| a.key.cmp(&b.key));
    // The drop-in already holds every pin: each key's line is looked up in it (to keep its
    // comment), and the sysctl.d files have 20 000 lines for the 20 000 keys.
    let etc = dir.path().join("etc/sysctl.d");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("90-sysctune.conf"), dropin::render("many-pins", &lines)).unwrap();

    let run = sysctune(&["--root", &r, "plan", "--profile", &p.display().to_string()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("Drop-in /etc/sysctl.d/90-sysctune.conf (up to date)")
    );
    assert!(
        run.stdout
            .contains(&format!("* = changes ({} of {PINS} managed keys)", PINS - 1)),
        "{}",
        run.stdout
            .lines()
            .filter(|l| l.contains("= changes"))
            .collect::<String>()
    );
    assert!(
        run.stdout
            .contains("\n* kernel.sysctune_test_19999  0        19999")
    );
}

#[test]
fn a_snapshot_with_a_hundred_thousand_files() {
    let modern = root("modern").display().to_string();
    let run = sysctune(&["--root", &modern, "snapshot"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut snap: Value = serde_json::from_str(&run.stdout).unwrap();
    // Every file sets vm.swappiness, all after the drop-in (95- sorts after 90-), so the
    // last one decides; one in a hundred also has a glob.
    let files: Vec<Value> = (0..FILES)
        .map(|i| {
            let glob = if i % 100 == 0 {
                "net.ipv4.conf.*.rp_filter = 1\n"
            } else {
                ""
            };
            json!({
                "path": format!("/etc/sysctl.d/95-{i:06}.conf"),
                "kind": "file",
                "content": format!("# file {i}\nvm.swappiness = {}\n{glob}", i % 100),
            })
        })
        .collect();
    snap["sysctl_d"]["files"] = Value::Array(files);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.json");
    std::fs::write(&file, serde_json::to_string(&snap).unwrap()).unwrap();
    let f = file.display().to_string();

    let run = sysctune(&[
        "--color",
        "never",
        "plan",
        "--profile",
        "web-server",
        "--snapshot",
        &f,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("vm.swappiness = 10 would not survive a reboot: /etc/sysctl.d/95-099999.conf:2"),
        "{}",
        run.stdout
    );
}
