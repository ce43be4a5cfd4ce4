//! Sysctl keys: names, paths under `proc/sys`, the values the kernel accepts, and where
//! each key lives (host-wide or per network namespace).
//!
//! A key is dotted (`net.ipv4.tcp_mem`) or slashed (`net/ipv4/tcp_mem`), as sysctl.d
//! allows; the canonical form is dotted. Keys that would leave `proc/sys` (empty, `.` or
//! `..` segments, absolute paths, NUL or control characters), that would display as
//! another key (bidi controls, zero-width characters) or read as something else in a
//! sysctl.d file (a leading `#`, `;` or `-`, quotes) are refused before anything is read
//! or written (README, "Profiles": keys are dotted names under /proc/sys). [`danger`] names the keys a profile may pin only when the
//! command line allows it.

use std::path::PathBuf;

/// Where a key's value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// One value per machine: vm.*, fs.*, kernel.*, tcp_mem, net.core.*_max.
    Host,
    /// One value per network namespace; a new namespace copies the host's at creation.
    Netns,
}

/// What Kubernetes lets a pod set (peers.md): `Safe` keys in any pod's
/// `securityContext.sysctls` (from [`KeyInfo::pod_safe`]'s version), `Unsafe` ones only
/// where the kubelet allows them (`--allowed-unsafe-sysctls`), `NodeOnly` ones on the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kubernetes {
    Safe,
    Unsafe,
    NodeOnly,
}

/// Since when Kubernetes counts a key safe per pod, and the kernel it needs then (the
/// kubelet rejects the key on an older kernel). From the Kubernetes documentation, "Using
/// sysctls in a Kubernetes Cluster": the list of safe sysctls and its version notes;
/// `securityContext.sysctls` itself is in the API since 1.11 (beta; GA in 1.21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodSafe {
    pub since: &'static str,
    pub kernel: Option<&'static str>,
}

/// The shape of a value and the range the kernel accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One integer in `min..=max`.
    Int { min: i128, max: i128 },
    /// Three integers in `min..=max`, ascending (`low pressure high`, `min default max`).
    Triple { min: i128, max: i128 },
    /// `lo hi`, each 1..=65535, lo ≤ hi.
    PortRange,
    /// `a,b-c`, each port 0..=65535.
    PortList,
    /// Read-only (`fs.file-nr`): never written.
    ReadOnly,
}

#[derive(Clone, Copy, Debug)]
pub struct KeyInfo {
    pub name: &'static str,
    pub format: Format,
    pub scope: Scope,
    pub kubernetes: Kubernetes,
    /// For a `Safe` key: since which Kubernetes version, on which kernel.
    pub pod_safe: Option<PodSafe>,
    /// Unit, for explanations.
    pub unit: &'static str,
}

const I32: i128 = i32::MAX as i128;
const I64: i128 = i64::MAX as i128;

const fn key(
    name: &'static str,
    format: Format,
    scope: Scope,
    kubernetes: Kubernetes,
    unit: &'static str,
) -> KeyInfo {
    KeyInfo {
        name,
        format,
        scope,
        kubernetes,
        pod_safe: None,
        unit,
    }
}

/// A key Kubernetes counts safe per pod since `since` (on kernel `kernel` and later).
const fn safe_since(info: KeyInfo, since: &'static str, kernel: Option<&'static str>) -> KeyInfo {
    KeyInfo {
        kubernetes: Safe,
        pod_safe: Some(PodSafe { since, kernel }),
        ..info
    }
}

use Format::*;
use Kubernetes::*;
use Scope::*;

/// Every key sysctune knows, in the fixed order of plans and drop-ins.
pub const KNOWN: &[KeyInfo] = &[
    key(
        "net.ipv4.tcp_mem",
        Triple { min: 0, max: I64 },
        Host,
        NodeOnly,
        "pages",
    ),
    safe_since(
        key(
            "net.ipv4.tcp_rmem",
            Triple { min: 1, max: I32 },
            Netns,
            Safe,
            "bytes",
        ),
        "1.32",
        Some("4.15"),
    ),
    safe_since(
        key(
            "net.ipv4.tcp_wmem",
            Triple { min: 1, max: I32 },
            Netns,
            Safe,
            "bytes",
        ),
        "1.32",
        Some("4.15"),
    ),
    key(
        "net.core.rmem_max",
        Int { min: 1, max: I32 },
        Host,
        NodeOnly,
        "bytes",
    ),
    key(
        "net.core.wmem_max",
        Int { min: 1, max: I32 },
        Host,
        NodeOnly,
        "bytes",
    ),
    safe_since(
        key(
            "net.ipv4.ip_unprivileged_port_start",
            Int { min: 0, max: 65535 },
            Netns,
            Safe,
            "port",
        ),
        "1.22",
        None,
    ),
    safe_since(
        key("net.ipv4.ip_local_port_range", PortRange, Netns, Safe, "ports"),
        "1.11",
        None,
    ),
    // Safe since 1.27 on kernel 3.16 or later.
    safe_since(
        key(
            "net.ipv4.ip_local_reserved_ports",
            PortList,
            Netns,
            Unsafe,
            "ports",
        ),
        "1.27",
        Some("3.16"),
    ),
    key(
        "net.ipv4.tcp_tw_reuse",
        Int { min: 0, max: 2 },
        Netns,
        Unsafe,
        "mode",
    ),
    key(
        "net.ipv4.tcp_tw_reuse_delay",
        Int { min: 1, max: 60000 },
        Netns,
        Unsafe,
        "ms",
    ),
    key(
        "net.ipv4.tcp_timestamps",
        Int { min: 0, max: 255 },
        Netns,
        Unsafe,
        "mode",
    ),
    key(
        "net.ipv4.tcp_max_tw_buckets",
        Int {
            min: i32::MIN as i128,
            max: I32,
        },
        Netns,
        Unsafe,
        "sockets",
    ),
    key(
        "net.ipv4.tcp_max_orphans",
        Int { min: 0, max: I32 },
        Host,
        NodeOnly,
        "sockets",
    ),
    key(
        "net.core.somaxconn",
        Int { min: 0, max: I32 },
        Netns,
        Unsafe,
        "connections",
    ),
    key(
        "vm.overcommit_memory",
        Int { min: 0, max: 2 },
        Host,
        NodeOnly,
        "mode",
    ),
    key(
        "vm.overcommit_ratio",
        Int {
            min: i32::MIN as i128,
            max: I32,
        },
        Host,
        NodeOnly,
        "percent",
    ),
    key(
        "vm.overcommit_kbytes",
        Int { min: 0, max: I64 },
        Host,
        NodeOnly,
        "KiB",
    ),
    // Read by rule overcommit, never set by it: in strict mode the kernel keeps these
    // back from every non-root allocation (__vm_enough_memory in mm/util.c).
    key(
        "vm.admin_reserve_kbytes",
        Int { min: 0, max: I64 },
        Host,
        NodeOnly,
        "KiB",
    ),
    key(
        "vm.user_reserve_kbytes",
        Int { min: 0, max: I64 },
        Host,
        NodeOnly,
        "KiB",
    ),
    key("vm.swappiness", Int { min: 0, max: 200 }, Host, NodeOnly, "ratio"),
    key("vm.panic_on_oom", Int { min: 0, max: 2 }, Host, NodeOnly, "mode"),
    key(
        "kernel.panic",
        Int {
            min: i32::MIN as i128,
            max: I32,
        },
        Host,
        NodeOnly,
        "seconds",
    ),
    key("fs.file-max", Int { min: 0, max: I64 }, Host, NodeOnly, "files"),
    key(
        "fs.nr_open",
        Int {
            min: 64,
            max: 2147483584,
        },
        Host,
        NodeOnly,
        "files",
    ),
    key("fs.file-nr", ReadOnly, Host, NodeOnly, "files"),
];

/// Keys the kernel sizes from RAM at every boot: a value pinned in the drop-in goes stale
/// when the host is resized, so a plan that keeps one unchanged does not pin it
/// (arithmetic, "Which keys a plan manages").
/// - `net.ipv4.tcp_mem`: `tcp_init_mem()` in net/ipv4/tcp.c, from `nr_free_buffer_pages()`.
/// - `fs.file-max`: `files_maxfiles_init()` in fs/file_table.c, about 10 % of RAM in files.
/// - `net.ipv4.tcp_max_tw_buckets`: `tcp_sk_init()` in net/ipv4/tcp_ipv4.c, half the
///   established hash table, itself sized from RAM.
pub const SIZED_AT_BOOT: &[&str] = &["net.ipv4.tcp_mem", "fs.file-max", "net.ipv4.tcp_max_tw_buckets"];

/// Keys the kernel checks against each other when one is written, as facts the planner and
/// the applier use without knowing the rules behind them.
///
/// `(first, then)`: write `first` before `then`, so `then` takes effect with `first`
/// already in place.
/// - `vm.overcommit_ratio`/`kbytes` before `vm.overcommit_memory`: strict mode (2) starts
///   with its new limit (`overcommit_policy_handler()`/`vm_commit_limit()` in mm/util.c).
/// - `kernel.panic` before `vm.panic_on_oom`: an OOM panic already reboots.
pub const WRITE_BEFORE: &[(&str, &str)] = &[
    ("vm.overcommit_ratio", "vm.overcommit_memory"),
    ("vm.overcommit_kbytes", "vm.overcommit_memory"),
    ("kernel.panic", "vm.panic_on_oom"),
];

/// `(a, b)`: writing `a` sets `b` to 0 in the kernel (`overcommit_ratio_handler()` and
/// `overcommit_kbytes_handler()` in mm/util.c), so at most one of them is managed and the
/// other reads 0 once the plan is applied.
pub const RESETS: &[(&str, &str)] = &[
    ("vm.overcommit_ratio", "vm.overcommit_kbytes"),
    ("vm.overcommit_kbytes", "vm.overcommit_ratio"),
];

/// `(floor, range)`: the first word of `range` may never be below `floor`: the kernel
/// refuses either write that would break it with EINVAL (`ipv4_local_port_range()` and
/// `ipv4_privileged_ports()` in net/ipv4/sysctl_net_ipv4.c). When `floor` rises, `range`
/// is written first; when it falls, `floor` is.
pub const FLOOR_OF: &[(&str, &str)] = &[(
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_port_range",
)];

/// The key that writing `key` resets to 0, if any ([`RESETS`]).
pub fn resets(key: &str) -> Option<&'static str> {
    RESETS.iter().find(|(a, _)| *a == key).map(|(_, b)| *b)
}

/// What a new network namespace starts with for a per-namespace key (a container's, a
/// pod's): most keys start at the kernel's default whatever the host has
/// (`inet_init_net()` in net/ipv4/af_inet.c, `tcp_sk_init()` in net/ipv4/tcp_ipv4.c,
/// `sysctl_core_net_init()` in net/core/sysctl_net_core.c); only `tcp_rmem` and
/// `tcp_wmem` are copied from the initial namespace when it is created (since 4.15,
/// `tcp_sk_init()`). Either way a change on the host never reaches a running container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewNetns {
    /// Copied from the initial namespace at creation, since this kernel.
    CopiesInitial { since: (u32, u32) },
    /// The kernel's default, whatever the host has.
    KernelDefault(&'static str),
    /// Not known to sysctune.
    Unknown,
}

/// The table of [`NewNetns`], checked with a nested `unshare -n` on 6.18.
pub fn new_netns(key: &str) -> NewNetns {
    use NewNetns::*;
    match key {
        "net.ipv4.tcp_rmem" | "net.ipv4.tcp_wmem" => CopiesInitial { since: (4, 15) },
        "net.ipv4.ip_local_port_range" => KernelDefault("32768 60999"),
        "net.ipv4.ip_unprivileged_port_start" => KernelDefault("1024"),
        "net.ipv4.ip_local_reserved_ports" => KernelDefault("(empty)"),
        "net.ipv4.tcp_tw_reuse" => KernelDefault("2"),
        "net.ipv4.tcp_fin_timeout" => KernelDefault("60"),
        "net.ipv4.tcp_timestamps" => KernelDefault("1"),
        "net.core.somaxconn" => KernelDefault("4096"),
        "net.ipv4.tcp_max_tw_buckets" => KernelDefault("half the established hash table"),
        _ => Unknown,
    }
}

pub fn info(key: &str) -> Option<&'static KeyInfo> {
    KNOWN.iter().find(|k| k.name == key)
}

/// Position in the fixed order; unknown keys sort after every known one.
pub fn order(key: &str) -> usize {
    KNOWN.iter().position(|k| k.name == key).unwrap_or(KNOWN.len())
}

/// The scope of any key: known keys from the table, others by prefix.
pub fn scope(key: &str) -> Scope {
    match info(key) {
        Some(i) => i.scope,
        None if key.starts_with("net.") && !key.starts_with("net.core.") && key != "net.ipv4.tcp_mem" => {
            Netns
        }
        None if key == "net.core.somaxconn" => Netns,
        None => Host,
    }
}

/// Why pinning `key` to `value` is dangerous, or `None` when it is an ordinary setting.
/// `key` is canonical, `value` normalised. A profile may pin these only when the command
/// line names the key (`--allow-key`); the host's own sysctl.d files may set them freely
/// (systemd's 50-coredump.conf pipes core_pattern to systemd-coredump).
///
/// Two kinds:
/// - values that are a program the kernel runs as root, with every capability and outside
///   any container, or that change what the kernel executes: `kernel.core_pattern`
///   starting with `|` (Documentation/admin-guide/sysctl/kernel.rst, core_pattern; run at
///   every core dump) or with `@` (fs/coredump.c since 6.16: every core goes to whoever
///   listens on that socket), `kernel.modprobe` (kernel.rst, modprobe; kernel/module/kmod.c
///   runs it for request_module, which unprivileged users trigger by opening a socket of a
///   family not yet loaded), `kernel.hotplug` (kernel.rst, hotplug; lib/kobject_uevent.c runs
///   it for every uevent), `kernel.poweroff_cmd` (kernel/reboot.c, orderly_poweroff) and
///   anything under `fs.binfmt_misc` (Documentation/admin-guide/binfmt-misc.rst,
///   fs/binfmt_misc.c: `register` makes the kernel run an interpreter for matching files,
///   with the file's setuid credentials under the `C` flag; `status` and the entries
///   disable or remove registrations). A core_pattern that names a file is a setting.
/// - write-only triggers, which hold no state: writing `vm.drop_caches` drops the page
///   cache and slab objects, writing `vm.compact_memory` compacts all of memory
///   (Documentation/admin-guide/sysctl/vm.rst). Pinned, a drop-in runs them at every boot
///   and every apply.
pub fn danger(key: &str, value: &str) -> Option<&'static str> {
    let value = value.trim_start();
    match key {
        "kernel.core_pattern" if value.starts_with('|') => Some(
            "a core_pattern starting with '|' is a program the kernel runs as root, with every capability \
             and outside any container, each time a process dumps core (kernel.rst, core_pattern)",
        ),
        "kernel.core_pattern" if value.starts_with('@') => Some(
            "a core_pattern starting with '@' sends the memory of every crashing process, setuid programs \
             and daemons included, to whatever listens on that socket (fs/coredump.c, Linux 6.16)",
        ),
        "kernel.modprobe" => Some(
            "kernel.modprobe is the program the kernel runs as root to load a module, which any user can \
             trigger by opening a socket of a family not yet loaded (kernel.rst, modprobe)",
        ),
        "kernel.hotplug" => Some(
            "kernel.hotplug is a program the kernel runs as root for every device event (kernel.rst, hotplug)",
        ),
        "kernel.poweroff_cmd" => Some(
            "kernel.poweroff_cmd is the program the kernel runs as root for an orderly power-off \
             (kernel/reboot.c)",
        ),
        "fs.binfmt_misc.register" => Some(
            "fs.binfmt_misc.register makes the kernel run an interpreter of your choosing for every \
             matching file, with the file's setuid credentials under the C flag; register interpreters \
             with binfmt.d(5) instead (binfmt-misc.rst, fs/binfmt_misc.c)",
        ),
        k if k == "fs.binfmt_misc" || k.starts_with("fs.binfmt_misc.") => Some(
            "writing under fs.binfmt_misc disables or removes interpreter registrations, which changes \
             what the kernel runs for those files; manage them with binfmt.d(5) instead \
             (binfmt-misc.rst, fs/binfmt_misc.c)",
        ),
        "vm.drop_caches" => Some(
            "vm.drop_caches is a write-only trigger, not a setting: each write drops the page cache and \
             slab objects, so pinned it would run at every boot and every apply (vm.rst, drop_caches)",
        ),
        "vm.compact_memory" => Some(
            "vm.compact_memory is a write-only trigger, not a setting: each write compacts all of memory, \
             so pinned it would run at every boot and every apply (vm.rst, compact_memory)",
        ),
        _ => None,
    }
}

/// Characters that change how text displays without showing themselves: bidi controls
/// (U+061C, U+200E/F, U+202A..U+202E, U+2066..U+2069), zero-width characters (U+200B..U+200D,
/// U+2060, U+FEFF) and the other format characters (Unicode category Cf: U+00AD soft
/// hyphen, U+180E, U+2061..U+2064, U+206A..U+206F, U+FFF9..U+FFFB, tags U+E0000..U+E007F).
/// `net.ipv4.tcp_\u{202e}mem` would print as another key; none is legal in a key.
/// Listed here rather than taken from a Unicode table, so no crate is needed; other
/// non-ASCII characters stay legal (a network interface's name may hold them).
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}')
}

/// `s` with every [`is_invisible`] character written `\u{202e}` and the rest as it is: for
/// echoing user input (a profile's line, a `--set`) that is not otherwise quoted.
pub fn reveal(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_invisible) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if is_invisible(c) {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// `s` in double quotes, escaped as `{:?}` escapes it, and every [`is_invisible`]
/// character as `\u{202e}` whatever the standard library's own table says, so a message
/// quoting user input shows exactly what it holds and cannot be made to read otherwise.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if is_invisible(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            let quoted = format!("{:?}", c.to_string());
            out.push_str(&quoted[1..quoted.len() - 1]);
        }
    }
    out.push('"');
    out
}

/// Canonical dotted form of a key, or why it is refused.
///
/// sysctl.d: "if the first separator is a slash, dots and slashes swap", so
/// `net/ipv4/conf/eth0.1/rp_filter` is `net.ipv4.conf.eth0/1.rp_filter`.
pub fn normalize_key(raw: &str) -> Result<String, String> {
    let shown = escape(raw);
    if raw.is_empty() {
        return Err("empty key".into());
    }
    if raw.chars().any(|c| c.is_control()) {
        return Err(format!(
            "key {shown} contains a control character (NUL, newline, tab, ...)"
        ));
    }
    if raw.chars().any(char::is_whitespace) {
        return Err(format!("key {shown} contains whitespace"));
    }
    if raw.chars().any(is_invisible) {
        return Err(format!(
            "key {shown} contains an invisible formatting character (a bidi control or a zero-width character), \
             so it could display as another key; type the key again"
        ));
    }
    if raw.contains(['"', '\'']) {
        return Err(format!(
            "key {shown} contains a quote; no key under /proc/sys does, and sysctl.d does not unquote keys"
        ));
    }
    if raw.starts_with(['#', ';']) {
        return Err(format!(
            "key {shown} starts with '#' or ';': in a sysctl.d file that line is a comment, so the key would never be set at boot"
        ));
    }
    if raw.starts_with('-') {
        return Err(format!(
            "key {shown} starts with '-': in a sysctl.d file that means \"ignore a failure to set\" the key after it, so the file would set another key than the one checked"
        ));
    }
    if raw.starts_with('/') {
        return Err(format!(
            "key {shown} is an absolute path; keys are relative to /proc/sys, e.g. net.ipv4.tcp_mem"
        ));
    }
    if raw.contains(['*', '?', '[', ']']) {
        return Err(format!("key {shown} is a glob; name one key"));
    }
    if raw.contains('=') {
        return Err(format!("key {shown} contains '='"));
    }
    let first_sep = raw.find(['.', '/']);
    let dotted: String = match first_sep.map(|i| raw.as_bytes()[i]) {
        Some(b'/') => raw
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => raw.to_string(),
    };
    for segment in path_segments(&dotted) {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!(
                "key {shown} has an empty, '.' or '..' segment; it must name a file under /proc/sys"
            ));
        }
    }
    Ok(dotted)
}

/// The path segments under `proc/sys` of a canonical dotted key.
fn path_segments(dotted: &str) -> impl Iterator<Item = String> + '_ {
    dotted.split('.').map(|s| s.replace('/', "."))
}

/// `net.ipv4.tcp_mem` → `net/ipv4/tcp_mem` (relative to `proc/sys`).
pub fn relative_path(dotted: &str) -> PathBuf {
    path_segments(dotted).collect()
}

/// A value with its whitespace normalised to single spaces, or why it is refused.
pub fn normalize_value(raw: &str) -> Result<String, String> {
    if raw.chars().any(|c| c.is_control() && c != '\t' && c != ' ') {
        return Err(format!(
            "value {raw:?} contains a control character (a newline would inject a second line into the drop-in)"
        ));
    }
    if raw.chars().any(is_invisible) {
        return Err(format!(
            "value {} contains an invisible formatting character (a bidi control or a zero-width character): it \
             would be written to the kernel and the drop-in as it is but display as something else; type it again",
            escape(raw)
        ));
    }
    Ok(raw.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The kernel's release as (major, minor), e.g. "6.18.44-fc" → (6, 18).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The upper bound of vm.swappiness on this kernel: 200 since 5.8, 100 before.
pub fn swappiness_max(kernel: &str) -> u32 {
    match kernel_version(kernel) {
        Some(v) if v < (5, 8) => 100,
        _ => 200,
    }
}

fn parse_int(key: &str, text: &str, min: i128, max: i128) -> Result<i128, String> {
    let valid = || format!("a decimal integer in {min}..={max}");
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{key}: {text:?} is not {}", valid()));
    }
    let n: i128 = text
        .parse()
        .map_err(|_| format!("{key}: {text:?} is out of range; valid: {}", valid()))?;
    if n < min || n > max {
        return Err(format!("{key}: {n} is out of range; valid: {}", valid()));
    }
    Ok(n)
}

/// Validate a value for `key` as the kernel would, and return it normalised (single
/// spaces, no leading zeros: the kernel reads `010` as octal 8). `kernel` is the release,
/// for vm.swappiness's range. Unknown keys are only checked for control characters.
pub fn validate(key: &str, raw: &str, kernel: &str) -> Result<String, String> {
    let value = normalize_value(raw).map_err(|e| format!("{key}: {e}"))?;
    let Some(info) = info(key) else {
        if value.is_empty() {
            return Err(format!("{key}: empty value"));
        }
        return Ok(value);
    };
    let fields: Vec<&str> = value.split(' ').filter(|s| !s.is_empty()).collect();
    match info.format {
        Int { min, mut max } => {
            if key == "vm.swappiness" {
                max = swappiness_max(kernel) as i128;
            }
            if fields.len() != 1 {
                return Err(format!("{key}: expected one integer, found {value:?}"));
            }
            Ok(parse_int(key, fields[0], min, max)?.to_string())
        }
        Triple { min, max } => {
            if fields.len() != 3 {
                return Err(format!(
                    "{key}: expected three integers ({}), found {value:?}",
                    triple_names(key)
                ));
            }
            let mut n = [0i128; 3];
            for (i, f) in fields.iter().enumerate() {
                n[i] = parse_int(key, f, min, max)?;
            }
            if !(n[0] <= n[1] && n[1] <= n[2]) {
                return Err(format!(
                    "{key}: {value:?} is not ascending; valid: {} with each ≤ the next",
                    triple_names(key)
                ));
            }
            Ok(format!("{} {} {}", n[0], n[1], n[2]))
        }
        PortRange => {
            if fields.len() != 2 {
                return Err(format!("{key}: expected two ports (low high), found {value:?}"));
            }
            let lo = parse_int(key, fields[0], 1, 65535)?;
            let hi = parse_int(key, fields[1], 1, 65535)?;
            if lo > hi {
                return Err(format!("{key}: low port {lo} is above high port {hi}"));
            }
            Ok(format!("{lo} {hi}"))
        }
        PortList => parse_port_list(&value)
            .map(|ranges| format_port_list(&ranges))
            .map_err(|e| format!("{key}: {e}")),
        ReadOnly => Err(format!("{key} is read-only; it cannot be set")),
    }
}

fn triple_names(key: &str) -> &'static str {
    if key == "net.ipv4.tcp_mem" {
        "low pressure high, in pages"
    } else {
        "min default max, in bytes"
    }
}

/// `8080,9000-9100` → [(8080, 8080), (9000, 9100)]. Empty is the empty list.
pub fn parse_port_list(text: &str) -> Result<Vec<(u32, u32)>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let parse = |s: &str| -> Result<u32, String> {
            s.trim()
                .parse::<u32>()
                .ok()
                .filter(|p| *p <= 65535)
                .ok_or_else(|| {
                    format!("{part:?} is not a port or a range of ports (0..=65535, e.g. 8080 or 9000-9100)")
                })
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(format!("{part:?}: {a} is above {b}"));
        }
        out.push((a, b));
    }
    Ok(out)
}

pub fn format_port_list(ranges: &[(u32, u32)]) -> String {
    ranges
        .iter()
        .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
        .collect::<Vec<_>>()
        .join(",")
}

/// Check that a value read from the running kernel has the shape of `key` (the number of
/// integers, or a port list) and return it normalised. Ranges and ordering are not
/// checked: the kernel accepts some values sysctune would never recommend (tcp_rmem with
/// min > default), and they must still be shown. The port range is the exception: the
/// kernel refuses a reversed range or a port outside 1..=65535, so such a value was never
/// the kernel's, and every figure computed from it (usable ports, connections/s) would be
/// nonsense.
pub fn check_shape(key: &str, raw: &str) -> Result<String, String> {
    let value = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(info) = info(key) else { return Ok(value) };
    let count = match info.format {
        Int { .. } => 1,
        Triple { .. } | ReadOnly => 3,
        PortRange => 2,
        PortList => {
            return parse_port_list(&value).map(|r| format_port_list(&r));
        }
    };
    let fields: Vec<&str> = value.split(' ').filter(|s| !s.is_empty()).collect();
    let ints = fields.iter().all(|f| {
        let d = f.strip_prefix('-').unwrap_or(f);
        !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && f.parse::<i128>().is_ok()
    });
    if fields.len() != count || !ints {
        let what = match (count, info.format) {
            (_, PortRange) => format!("two ports (low high), {PORT_RANGE_VALID}"),
            (1, _) => "one integer".to_string(),
            _ => format!("{count} integers"),
        };
        return Err(format!("expected {what}, found {value:?}"));
    }
    if matches!(info.format, PortRange) {
        let ports: Vec<i128> = fields.iter().filter_map(|f| f.parse().ok()).collect();
        if let [lo, hi] = ports[..] {
            let problem = if !(1..=65535).contains(&lo) || !(1..=65535).contains(&hi) {
                Some("a port outside 1..=65535")
            } else if lo > hi {
                Some("the low port above the high one")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(format!(
                    "{value:?} has {problem}, which the kernel refuses (EINVAL), so it is not a value the \
                     kernel holds; valid: two ports (low high), {PORT_RANGE_VALID}"
                ));
            }
        }
    }
    Ok(value)
}

/// What the kernel accepts for ip_local_port_range, for messages.
const PORT_RANGE_VALID: &str = "each in 1..=65535 and low ≤ high, e.g. 32768 60999";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_facts_name_known_keys_in_an_order_that_works() {
        for (a, b) in WRITE_BEFORE.iter().chain(RESETS).chain(FLOOR_OF) {
            assert!(info(a).is_some() && info(b).is_some(), "{a} {b}");
        }
        for (a, b) in RESETS {
            assert!(
                RESETS.contains(&(*b, *a)),
                "{a} resets {b} but not the other way round"
            );
            assert_eq!(resets(a), Some(*b));
        }
        // A floor that falls is written first by the table's order alone.
        for (floor, range) in FLOOR_OF {
            assert!(
                order(floor) < order(range),
                "{floor} must come before {range} in KNOWN"
            );
        }
    }

    #[test]
    fn values_with_invisible_characters_are_refused() {
        let e = normalize_value("4\u{202e}1").unwrap_err();
        assert!(
            e.starts_with("value \"4\\u{202e}1\" contains an invisible formatting character"),
            "{e}"
        );
        assert_eq!(
            normalize_value("4096  87380\t6291456").unwrap(),
            "4096 87380 6291456"
        );
    }

    #[test]
    fn keys_are_normalised_and_confined() {
        assert_eq!(normalize_key("net.ipv4.tcp_mem").unwrap(), "net.ipv4.tcp_mem");
        assert_eq!(normalize_key("net/ipv4/tcp_mem").unwrap(), "net.ipv4.tcp_mem");
        assert_eq!(
            normalize_key("net/ipv4/conf/eth0.1/rp_filter").unwrap(),
            "net.ipv4.conf.eth0/1.rp_filter"
        );
        assert_eq!(
            relative_path("net.ipv4.conf.eth0/1.rp_filter"),
            PathBuf::from("net/ipv4/conf/eth0.1/rp_filter")
        );
        for bad in [
            "",
            "net..ipv4",
            "../etc/passwd",
            "net/../../etc",
            "/etc/passwd",
            "net.ipv4.\0x",
            "a\nb",
            "net.*",
            "a=b",
            ".net",
            "net.",
        ] {
            assert!(normalize_key(bad).is_err(), "{bad:?} accepted");
        }
        // "net/./x": a '.' segment after the swap
        assert!(normalize_key("net/./x").is_err());
    }

    #[test]
    fn keys_that_display_or_parse_as_another_key_are_refused() {
        for (bad, why) in [
            ("net.ipv4.tcp_\u{202e}mem", "invisible"),
            ("net.ipv4.tcp_\u{2066}mem\u{2069}", "invisible"),
            ("net.ipv4.tcp\u{200b}_mem", "invisible"),
            ("\u{feff}net.ipv4.tcp_mem", "invisible"),
            ("net.ipv4.tcp\u{ad}_mem", "invisible"),
            ("net.ipv4.tcp\u{61c}_mem", "invisible"),
            ("net.ipv4.tcp\u{180e}_mem", "invisible"),
            ("net.ipv4.tcp\u{2060}_mem", "invisible"),
            ("\"net.ipv4.tcp_mem\"", "quote"),
            ("net.ipv4.tcp_mem'", "quote"),
            ("#net.ipv4.tcp_mem", "comment"),
            (";net.ipv4.tcp_mem", "comment"),
            ("-kernel.core_pattern", "ignore a failure"),
        ] {
            let e = normalize_key(bad).expect_err(&escape(bad));
            assert!(e.contains(why), "{e}");
            // The message shows the key escaped: nothing invisible reaches the terminal.
            assert!(!e.chars().any(is_invisible), "{}", escape(&e));
        }
        let e = normalize_key("net.ipv4.tcp_\u{202e}mem").unwrap_err();
        assert!(e.contains(r#""net.ipv4.tcp_\u{202e}mem""#), "{e}");
        // Other non-ASCII stays legal: interface names may hold it.
        assert_eq!(
            normalize_key("net.ipv4.conf.wlan-café.rp_filter").unwrap(),
            "net.ipv4.conf.wlan-café.rp_filter"
        );
        // '#', ';' and '-' only matter at the start of a line.
        assert!(normalize_key("net.ipv4.conf.br-lan.rp_filter").is_ok());
    }

    #[test]
    fn dangerous_keys_say_why() {
        for (key, value, why) in [
            ("kernel.core_pattern", "|/bin/sh -c evil", "runs as root"),
            (
                "kernel.core_pattern",
                "|/usr/lib/systemd/systemd-coredump %P",
                "'|'",
            ),
            ("kernel.core_pattern", "@/run/coredump.socket", "socket"),
            ("kernel.modprobe", "/sbin/modprobe", "load a module"),
            ("kernel.hotplug", "/sbin/hotplug", "device event"),
            ("kernel.poweroff_cmd", "/sbin/poweroff", "power-off"),
            ("fs.binfmt_misc.register", ":x:E::x::/tmp/i:C", "interpreter"),
            ("fs.binfmt_misc.status", "-1", "removes"),
            ("fs.binfmt_misc.python3/11", "0", "removes"),
            ("vm.drop_caches", "3", "write-only"),
            ("vm.compact_memory", "1", "write-only"),
        ] {
            let reason = danger(key, value).unwrap_or_else(|| panic!("{key} = {value} not dangerous"));
            assert!(reason.contains(why), "{key}: {reason}");
        }
        for (key, value) in [
            ("kernel.core_pattern", "core.%p"),
            ("kernel.core_pattern", "/var/crash/core.%e.%p"),
            ("kernel.core_pipe_limit", "4"),
            ("kernel.sysrq", "0"),
            ("vm.swappiness", "10"),
            ("fs.binfmt_miscellany", "1"),
        ] {
            assert_eq!(danger(key, value), None, "{key} = {value}");
        }
    }

    #[test]
    fn escape_shows_invisible_characters() {
        assert_eq!(escape("a\u{202e}b"), r#""a\u{202e}b""#);
        assert_eq!(
            escape("\u{200b}\u{feff}\u{e0041}"),
            r#""\u{200b}\u{feff}\u{e0041}""#
        );
        assert_eq!(escape("tab\there \"q\" 'x' é"), r#""tab\there \"q\" 'x' é""#);
        assert_eq!(escape(""), r#""""#);
        assert_eq!(reveal("a\u{2066}b \"c\""), r#"a\u{2066}b "c""#);
        assert_eq!(reveal("plain"), "plain");
    }

    #[test]
    fn values_are_validated_like_the_kernel() {
        assert_eq!(
            validate("net.ipv4.tcp_rmem", "4096\t87380   6291456", "6.1").unwrap(),
            "4096 87380 6291456"
        );
        assert!(validate("net.ipv4.tcp_rmem", "4096 87380", "6.1").is_err());
        assert!(validate("net.ipv4.tcp_rmem", "0 87380 6291456", "6.1").is_err());
        assert!(validate("net.ipv4.tcp_rmem", "4096 87380 2147483648", "6.1").is_err());
        assert!(
            validate("net.ipv4.tcp_mem", "3 2 1", "6.1")
                .unwrap_err()
                .contains("ascending")
        );
        assert_eq!(validate("vm.swappiness", "010", "6.1").unwrap(), "10");
        assert!(validate("vm.swappiness", "150", "5.4.0").is_err());
        assert!(validate("vm.swappiness", "150", "6.1").is_ok());
        assert!(validate("vm.swappiness", "0x10", "6.1").is_err());
        assert!(validate("net.ipv4.ip_local_port_range", "61000 32768", "6.1").is_err());
        assert!(validate("net.ipv4.ip_local_port_range", "0 100", "6.1").is_err());
        assert!(
            validate("vm.swappiness", "10\n", "6.1")
                .unwrap_err()
                .contains("control")
        );
        assert!(validate("net.core.somaxconn", "4096\nvm.x=1", "6.1").is_err());
        assert_eq!(validate("vm.overcommit_ratio", "-5", "6.1").unwrap(), "-5");
        assert!(
            validate("fs.file-nr", "1 0 2", "6.1")
                .unwrap_err()
                .contains("read-only")
        );
        assert_eq!(
            validate("net.ipv4.ip_local_reserved_ports", "8080, 9000-9100", "6.1").unwrap(),
            "8080,9000-9100"
        );
        assert!(validate("net.ipv4.ip_local_reserved_ports", "9100-9000", "6.1").is_err());
    }

    #[test]
    fn a_live_port_range_the_kernel_would_refuse_is_garbled() {
        let key = "net.ipv4.ip_local_port_range";
        assert_eq!(check_shape(key, "32768\t60999\n").unwrap(), "32768 60999");
        assert_eq!(check_shape(key, "1024 1024").unwrap(), "1024 1024");
        for bad in ["60999 32768", "0 0", "1 70000", "abc", "1", "1 2 3", "-1 5"] {
            let e = check_shape(key, bad).unwrap_err();
            assert!(
                e.contains(&format!("{bad:?}")) && e.contains("e.g. 32768 60999"),
                "{bad}: {e}"
            );
        }
        // Other keys keep what the kernel shows, odd or not.
        assert_eq!(
            check_shape("net.ipv4.tcp_rmem", "87380 4096 6291456").unwrap(),
            "87380 4096 6291456"
        );
    }
}
