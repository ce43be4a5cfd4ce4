//! `plan --format kubernetes`: one host's plan in Kubernetes' terms, as YAML documents.
//!
//! - Keys a network namespace holds that Kubernetes counts safe go in a pod's
//!   `securityContext.sysctls` (from the Kubernetes version in [`keys::PodSafe`]);
//! - namespaced keys it counts unsafe go there too, and the kubelet must allow them
//!   (`--allowed-unsafe-sysctls`);
//! - host-wide keys can only be set on the node: a DaemonSet whose privileged init
//!   container runs `sysctune --root /host apply --only KEY...` on every node, with the
//!   drop-in this plan would write in a ConfigMap for review.
//!
//! Written by hand: every scalar is a JSON string (a valid YAML double-quoted scalar), the
//! drop-in a literal block, so no value can change the document's structure.

use crate::cli::PlanArgs;
use crate::keys::{self, Kubernetes, Scope};
use crate::plan::{DEFAULT_DROPIN, Plan, Setting};

/// The pod in the example manifest: a placeholder for the user's own containers.
const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// `securityContext.sysctls` is in the Pod API from this version (beta; GA in 1.21).
const SYSCTLS_FIELD_SINCE: &str = "1.11";

/// Whether a pod can set the key (in its own network namespace), safe or unsafe.
fn per_pod(s: &Setting) -> bool {
    s.scope == Scope::Netns && s.kubernetes != Kubernetes::NodeOnly
}

/// The keys only the node can set: what the DaemonSet applies (`--only`).
pub fn node_keys(plan: &Plan) -> Vec<String> {
    plan.settings
        .iter()
        .filter(|s| !per_pod(s))
        .map(|s| s.key.clone())
        .collect()
}

/// `plan`: the whole plan; `node_plan`: the plan restricted to [`node_keys`], whose drop-in
/// is what the DaemonSet writes (None when there are no such keys).
pub fn render(plan: &Plan, node_plan: Option<&Plan>, args: &PlanArgs) -> String {
    // A key the kernel sizes for each namespace, kept as it is (not pinned), is left to the
    // pod's own namespace, as the drop-in leaves it to the boot.
    let pod: Vec<&Setting> = plan.settings.iter().filter(|s| per_pod(s) && s.pinned).collect();
    let unsafe_keys: Vec<&str> = pod
        .iter()
        .filter(|s| s.kubernetes == Kubernetes::Unsafe)
        .map(|s| s.key.as_str())
        .collect();
    let node: Vec<&Setting> = plan.settings.iter().filter(|s| !per_pod(s)).collect();
    let needs = pod
        .iter()
        .filter_map(|s| pod_safe(s))
        .map(|p| p.since)
        .fold(
            SYSCTLS_FIELD_SINCE,
            |a, b| if version(b) > version(a) { b } else { a },
        );

    let mut out = String::new();
    let host = plan.host.name.as_deref().unwrap_or("this host");
    out += &format!(
        "# sysctune plan --format kubernetes: profile {}, planned on {}\n",
        q(&plan.profile),
        comment(host)
    );
    if pod.is_empty() && node.is_empty() {
        out += "# The plan manages no keys: nothing to set.\n";
        return out;
    }
    if !pod.is_empty() {
        out += &format!(
            "#\n# Per pod (Kubernetes {needs} or later): securityContext.sysctls, for the keys each network\n\
             # namespace holds. A pod's namespace does not follow the node's values: put these in\n\
             # every pod template that needs them.\n"
        );
        for s in &pod {
            out += &format!("#   {}: {}\n", s.key, pod_note(s, &plan.host.kernel));
        }
    }
    if !unsafe_keys.is_empty() {
        out += &format!(
            "#\n# The kubelet on the nodes these pods run on must allow the unsafe ones:\n\
             #   --allowed-unsafe-sysctls={}\n\
             #   (KubeletConfiguration: allowedUnsafeSysctls: [{}])\n",
            unsafe_keys.join(","),
            unsafe_keys.iter().map(|k| q(k)).collect::<Vec<_>>().join(", ")
        );
    }
    if !node.is_empty() {
        out += "#\n# Per node: host-wide keys, which no pod can set. The DaemonSet's privileged init container\n\
                # runs `sysctune apply` on every node, so each node gets its own arithmetic (the ConfigMap\n\
                # holds the drop-in as planned on this host, to review):\n";
        for s in &node {
            out += &format!("#   {} = {}\n", s.key, comment(&s.recommended));
        }
    }
    if !pod.is_empty() {
        out += &pod_document(&pod);
    }
    if let Some(node_plan) = node_plan.filter(|_| !node.is_empty()) {
        out += &node_documents(node_plan, args, &node);
    }
    out
}

fn pod_safe(s: &Setting) -> Option<keys::PodSafe> {
    keys::info(&s.key).and_then(|i| i.pod_safe)
}

fn pod_note(s: &Setting, host_kernel: &str) -> String {
    match (s.kubernetes, pod_safe(s)) {
        (Kubernetes::Safe, Some(p)) => match p.kernel {
            Some(k) if version(host_kernel) < version(k) => format!(
                "safe since Kubernetes {}, on kernel {k} or later (this host's {} is older: \
                 the kubelet refuses the pod here)",
                p.since,
                comment(host_kernel)
            ),
            Some(k) => format!("safe since Kubernetes {}, on kernel {k} or later", p.since),
            None => format!("safe since Kubernetes {}", p.since),
        },
        (Kubernetes::Safe, None) => "safe".to_string(),
        _ => "unsafe: the kubelet must allow it".to_string(),
    }
}

fn pod_document(pod: &[&Setting]) -> String {
    let mut out = String::from(
        "---\n\
         # An example pod: copy spec.securityContext.sysctls into your own pod templates.\n\
         apiVersion: v1\n\
         kind: Pod\n\
         metadata:\n  \
           name: sysctune-sysctls\n\
         spec:\n  \
           securityContext:\n    \
             sysctls:\n",
    );
    for s in pod {
        out += &format!(
            "      - name: {}\n        value: {}\n",
            q(&s.key),
            q(&s.recommended)
        );
    }
    out += &format!(
        "  containers:\n    - name: app\n      image: {}\n",
        q(PAUSE_IMAGE)
    );
    out
}

fn node_documents(plan: &Plan, args: &PlanArgs, node: &[&Setting]) -> String {
    let image = args
        .image
        .clone()
        .unwrap_or_else(|| format!("sysctune:{}", env!("CARGO_PKG_VERSION")));
    let mut command: Vec<String> = ["sysctune", "--root", "/host", "apply", "--profile", &args.profile]
        .map(String::from)
        .to_vec();
    for set in &args.sets {
        command.extend(["--set".to_string(), set.clone()]);
    }
    for s in node {
        command.extend(["--only".to_string(), s.key.clone()]);
    }
    for key in &args.allow_keys {
        command.extend(["--allow-key".to_string(), key.clone()]);
    }
    if args.dropin != DEFAULT_DROPIN {
        command.extend(["--dropin".to_string(), args.dropin.clone()]);
    }
    if args.state_dir != crate::apply::DEFAULT_STATE_DIR {
        command.extend(["--state-dir".to_string(), args.state_dir.clone()]);
    }
    let file = plan.dropin.path.rsplit('/').next().unwrap_or("90-sysctune.conf");
    let mut out = format!(
        "---\n\
         # The drop-in `sysctune apply` writes on a node like this one ({path}).\n\
         apiVersion: v1\n\
         kind: ConfigMap\n\
         metadata:\n  \
           name: sysctune-dropin\n  \
           namespace: kube-system\n\
         data:\n  \
           {key}: {content}",
        path = comment(&plan.dropin.path),
        key = q(file),
        content = block(&plan.dropin.content, 4),
    );
    out += &format!(
        "---\n\
         # sysctune on every node: the init container applies the host-wide keys (the profile is a\n\
         # built-in or a path inside the image), then a pause container keeps the pod running.\n\
         # hostNetwork: the host's namespace, so net.* keys are the node's own. The host's / is\n\
         # mounted at /host: sysctune reads /host/proc and writes /host/etc/sysctl.d and its state.\n\
         apiVersion: apps/v1\n\
         kind: DaemonSet\n\
         metadata:\n  \
           name: sysctune\n  \
           namespace: kube-system\n  \
           labels:\n    \
             app.kubernetes.io/name: sysctune\n\
         spec:\n  \
           selector:\n    \
             matchLabels:\n      \
               app.kubernetes.io/name: sysctune\n  \
           template:\n    \
             metadata:\n      \
               labels:\n        \
                 app.kubernetes.io/name: sysctune\n    \
             spec:\n      \
               hostNetwork: true\n      \
               initContainers:\n        \
                 - name: sysctune\n          \
                   image: {image}\n          \
                   command:\n{command}          \
                   securityContext:\n            \
                     privileged: true\n          \
                   volumeMounts:\n            \
                     - name: host\n              \
                       mountPath: /host\n            \
                     - name: dropin\n              \
                       mountPath: /etc/sysctune/reviewed\n              \
                       readOnly: true\n      \
               containers:\n        \
                 - name: pause\n          \
                   image: {pause}\n      \
               volumes:\n        \
                 - name: host\n          \
                   hostPath:\n            \
                     path: /\n            \
                     type: Directory\n        \
                 - name: dropin\n          \
                   configMap:\n            \
                     name: sysctune-dropin\n",
        image = q(&image),
        pause = q(PAUSE_IMAGE),
        command = command
            .iter()
            .map(|a| format!("            - {}\n", q(a)))
            .collect::<String>(),
    );
    out
}

/// A YAML double-quoted scalar (JSON's string syntax is a subset of it).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Text for a `#` comment: on one line.
fn comment(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// A literal block scalar (`|`) indented by `indent`, or a quoted scalar when the text
/// would not survive one (no final newline, more than one, a leading space, tabs, CR).
fn block(text: &str, indent: usize) -> String {
    let plain = text.ends_with('\n')
        && !text.ends_with("\n\n")
        && !text.starts_with(' ')
        && !text.contains(['\t', '\r']);
    if !plain {
        return format!("{}\n", q(text));
    }
    let pad = " ".repeat(indent);
    let mut out = String::from("|\n");
    for line in text.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            out += &format!("{pad}{line}\n");
        }
    }
    out
}

/// "1.32" → (1, 32), "3.10.0-862.el7" → (3, 10), to compare versions.
fn version(v: &str) -> (u32, u32) {
    let mut parts = v
        .split(['.', '-'])
        .map(|p| p.trim_matches(|c: char| !c.is_ascii_digit()).parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_keeps_text_and_falls_back_to_quotes() {
        assert_eq!(block("a = 1\n# b\n", 4), "|\n    a = 1\n    # b\n");
        assert_eq!(block("a = 1", 4), "\"a = 1\"\n");
        assert_eq!(block(" a\n", 4), "\" a\\n\"\n");
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version("1.32") > version("1.4"));
        assert!(version("1.11") < version("1.22"));
        assert!(version("3.10.0-862.el7.x86_64") < version("4.15"));
        assert!(version("6.1.0-13-amd64") > version("4.15"));
    }

    #[test]
    fn every_safe_key_says_since_when() {
        for k in keys::KNOWN {
            assert_eq!(
                k.kubernetes == Kubernetes::Safe,
                k.pod_safe.is_some(),
                "{}: safe keys carry the Kubernetes version, others none",
                k.name
            );
            if k.kubernetes == Kubernetes::Safe {
                assert_eq!(
                    k.scope,
                    Scope::Netns,
                    "{}: a pod can only set namespaced keys",
                    k.name
                );
            }
        }
    }
}
