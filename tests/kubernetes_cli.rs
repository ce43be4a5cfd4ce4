//! `plan --format kubernetes`: the pod sysctls, the kubelet's unsafe list and the node
//! DaemonSet, snapshotted on fixture hosts; the commands and flags that refuse it.
//! (CI validates the same YAML with kubernetes-validate: examples/kubernetes/test.sh.)

mod common;

use common::{profile, root, scrub, sysctune};

fn kubernetes(root_name: &str, profile_arg: &str, extra: &[&str]) -> String {
    let r = root(root_name).display().to_string();
    let mut args = vec![
        "--root",
        &r,
        "plan",
        "--profile",
        profile_arg,
        "--format",
        "kubernetes",
    ];
    args.extend_from_slice(extra);
    let run = sysctune(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    scrub(&run.stdout)
}

#[test]
fn pod_and_node_pieces_for_a_web_server() {
    // Old kernel (3.10): tcp_rmem/tcp_wmem need 4.15 per pod, which the output says.
    let out = kubernetes(
        "article-batch",
        "web-server",
        &["--image", "registry.example/sysctune:1"],
    );
    assert!(out.contains("image: \"registry.example/sysctune:1\""));
    insta::assert_snapshot!("web-server-article-batch", out);
}

#[test]
fn unsafe_namespaced_keys_need_the_kubelet() {
    let out = kubernetes("modern", &profile("netns.toml"), &[]);
    assert!(out.contains("--allowed-unsafe-sysctls=net.ipv4.tcp_tw_reuse"));
    // Only namespaced keys: no DaemonSet.
    assert!(!out.contains("kind: DaemonSet"));
    insta::assert_snapshot!("netns-modern", out);
}

#[test]
fn the_daemonset_applies_only_host_wide_keys_with_the_plan_flags() {
    // (not the article's proxy host: TCP holds more there now than the budget, so its
    // tcp_mem is kept and would not be in the drop-in)
    let out = kubernetes(
        "modern",
        "reverse-proxy",
        &["--set", "connections.concurrent=500000"],
    );
    let command: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("command:"))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("- "))
        .map(|l| l.trim_start().trim_start_matches("- ").trim_matches('"'))
        .collect();
    assert_eq!(
        &command[..6],
        [
            "sysctune",
            "--root",
            "/host",
            "apply",
            "--profile",
            "reverse-proxy"
        ]
    );
    assert!(
        command
            .windows(2)
            .any(|w| w == ["--set", "connections.concurrent=500000"])
    );
    let only: Vec<&str> = command
        .windows(2)
        .filter(|w| w[0] == "--only")
        .map(|w| w[1])
        .collect();
    assert!(only.contains(&"net.ipv4.tcp_mem"), "{only:?}");
    assert!(
        only.iter()
            .all(|k| !k.starts_with("net.ipv4.tcp_rmem") && *k != "net.ipv4.ip_local_port_range")
    );
    // The ConfigMap's drop-in is that narrower apply's: no per-pod key in it.
    let configmap = out
        .split("kind: ConfigMap")
        .nth(1)
        .unwrap()
        .split("---")
        .next()
        .unwrap();
    assert!(configmap.contains("net.ipv4.tcp_mem = "), "{configmap}");
    assert!(!configmap.contains("net.ipv4.tcp_rmem"), "{configmap}");
}

#[test]
fn only_plan_prints_kubernetes() {
    let r = root("article-batch").display().to_string();
    for args in [
        vec!["--root", &r, "show", "--format", "kubernetes"],
        vec![
            "--root",
            &r,
            "apply",
            "--profile",
            "batch-client",
            "--format",
            "kubernetes",
        ],
        vec!["--root", &r, "status", "--format", "kubernetes"],
        vec!["--root", &r, "doctor", "--format", "kubernetes"],
    ] {
        let run = sysctune(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stdout);
        assert!(
            run.stderr.contains("only `sysctune plan` prints Kubernetes YAML"),
            "{}",
            run.stderr
        );
    }
    let run = sysctune(&["--root", &r, "plan", "--profile", "batch-client", "--image", "x"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("--image: only with `plan --format kubernetes`"),
        "{}",
        run.stderr
    );
    let run = sysctune(&[
        "--root",
        &r,
        "plan",
        "--profile",
        "batch-client",
        "--format",
        "kubernetes",
        "--snapshot",
        "x.json",
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("Kubernetes output is for one host's plan"),
        "{}",
        run.stderr
    );
}
