//! Command-line definitions only (clap). Validation happens in `app`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "sysctune",
    version,
    about = "Linux sysctl tuning advisor and applier: computes tcp_mem, buffers, port range, overcommit \
             and descriptor limits from a workload profile, explains every number, and applies them safely.",
    after_help = "Examples:\n  sysctune plan --profile reverse-proxy\n  sysctune plan --profile batch-client --format json\n  sysctune show net.ipv4.tcp_mem\n  sysctune explain tcp-memory"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Filesystem root to read (and write) instead of / (DIR/proc/sys, DIR/etc/sysctl.d, ...)
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Output format (text when not given; prometheus: doctor only)
    #[arg(long = "format", global = true, value_enum, value_name = "FORMAT")]
    pub format_given: Option<Format>,
    /// Colour: auto (NO_COLOR and non-terminals mean never), always, never
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Also show each rule's arithmetic, step by step
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

impl Global {
    /// The output format: text unless `--format` says otherwise.
    pub fn format(&self) -> Format {
        self.format_given.unwrap_or(Format::Text)
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    /// `plan` only: YAML for Kubernetes (pod sysctls, the kubelet's unsafe list, a node DaemonSet)
    Kubernetes,
    /// The Prometheus text exposition format (`doctor` only).
    Prometheus,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Auto => "auto",
            Color::Always => "always",
            Color::Never => "never",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Current values of every key the rules know (or the named ones) and the host facts
    #[command(
        after_help = "Examples:\n  sysctune show\n  sysctune show net.ipv4.tcp_mem vm.overcommit_memory\n  sysctune show --profile reverse-proxy          # live, boot and recommended side by side\n  sysctune --root /srv/image show --format json"
    )]
    Show {
        /// Keys to show (dotted or slashed); all known keys when none
        keys: Vec<String>,
        /// Also show what this profile recommends for each key it manages
        #[arg(long, short = 'p', value_name = "P")]
        profile: Option<String>,
        /// Override one profile field (with --profile): FIELD=VALUE
        #[arg(long = "set", value_name = "FIELD=VALUE", requires = "profile")]
        sets: Vec<String>,
        /// Let the profile pin KEY although it is dangerous (with --profile; see `plan --help`)
        #[arg(long = "allow-key", value_name = "KEY", requires = "profile")]
        allow_keys: Vec<String>,
    },
    /// The recommendation: keys, current and recommended values, why, capacity, findings, drop-in diff
    #[command(
        after_help = "Examples:\n  sysctune plan --profile reverse-proxy\n  sysctune plan --profile ./edge.toml --set connections.concurrent=860000 -v\n  sysctune plan --profile batch-client --only 'net.ipv4.*' --exit-code --format json\n  sysctune plan --profile ./crash.toml --allow-key kernel.core_pattern   # pins '|...'\n  sysctune plan --profile web-server --format kubernetes --image registry.example/sysctune:0.1.0"
    )]
    Plan(PlanArgs),
    /// Write the drop-in (atomically, only if it changes) and apply the changed keys live (read back, all or nothing)
    #[command(
        after_help = "Examples:\n  sysctune apply --profile batch-client\n  sysctune apply --profile reverse-proxy --format json     # for config management: use .changed\n  sysctune apply --profile web-server --only 'net.ipv4.*' --no-file   # a network namespace's own keys\n  sysctune rollback\n\nExit codes: 0 applied (or nothing to do), 2 refused or failed; on failure every key already\nwritten and the drop-in are restored first."
    )]
    Apply(ApplyArgs),
    /// Write a snapshot of this host (JSON) to plan it offline with `plan --snapshot`
    #[command(
        after_help = "Examples:\n  sysctune snapshot > $(hostname).json\n  sysctune snapshot --key net.core.netdev_max_backlog > host.json\n  sysctune plan --profile reverse-proxy --snapshot fleet/"
    )]
    Snapshot {
        /// Also record this key (keys the rules know are always recorded); repeatable
        #[arg(long = "key", value_name = "KEY")]
        keys: Vec<String>,
    },
    /// Restore the live values and the drop-in recorded by the last apply
    #[command(
        after_help = "The record is checked before anything is written: its drop-in must be a *.conf file in a sysctl.d\ndirectory, its keys and values ones apply would write (a dangerous key only with --allow-key).\n\nExamples:\n  sysctune rollback\n  sysctune --root /srv/image rollback --format json"
    )]
    Rollback(RollbackArgs),
    /// What the last apply set, and whether live values, boot and the drop-in still agree
    #[command(
        after_help = "For each key sysctune set: the live value, the drop-in's, the one that wins at boot (file and\nline) and the applied profile's recommendation now, with drift marked.\n\nExit codes: 0 in sync, 1 drift, 2 error.\n\nExamples:\n  sysctune status\n  sysctune status --format json"
    )]
    Status(StateArgs),
    /// Live diagnosis: ports per destination, orphans, TCP memory, commit, OOM risk, open files
    #[command(
        after_help = "Checks (warning / error):\n  ports             sockets holding ephemeral ports per destination address:port, of the\n                    usable ip_local_port_range (50% / 90%)\n  orphans           sockstat orphan of net.ipv4.tcp_max_orphans (50% / 90%)\n  tcp-memory        sockstat mem of net.ipv4.tcp_mem (pressure / high)\n  commit            Committed_AS of CommitLimit in strict mode (90% / over)\n  oom               MemAvailable of MemTotal without swap (below 10% / below 5%)\n  file-descriptors  fs.file-nr of fs.file-max (80% / 95%)\n  processes         each process's open fds of its soft RLIMIT_NOFILE (80% / 95%), and\n                    the processes holding the most sockets, with their ports\n\nSockets: on a live host (--root /) a NETLINK_SOCK_DIAG dump that the kernel filters to the\nlocal ports of ip_local_port_range, as ss reads them; /proc/net/tcp and tcp6 under another root\nor where netlink is refused (said in the notes).\n\nExit codes: 0 healthy, 1 a warning or an error was found, 2 unreadable or garbled host data.\n\nExamples:\n  sysctune doctor\n  sysctune doctor --format json --top 50\n  sysctune doctor --sockets proc\n  sysctune --root /srv/snapshot doctor"
    )]
    Doctor(DoctorArgs),
    /// Which built-in profile fits what this host is doing, with --set overrides and the evidence
    #[command(
        after_help = "Reads sockstat, the listening sockets, connections in and out and TIME_WAIT per destination\n(/proc/net/tcp, tcp6) and names the built-in profile that fits the workload. Writes nothing.\n\nExamples:\n  sysctune recommend\n  sysctune --root /srv/snapshot recommend --format json"
    )]
    Recommend,
    /// List the built-in profiles, or print one as TOML to start from
    #[command(
        after_help = "Examples:\n  sysctune profiles\n  sysctune profiles show reverse-proxy > my-proxy.toml\n  sysctune profiles show ./my-proxy.toml --resolved"
    )]
    Profiles {
        #[command(subcommand)]
        action: Option<ProfilesAction>,
    },
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  sysctune completions bash > /etc/bash_completion.d/sysctune\n  sysctune completions zsh > \"${fpath[1]}/_sysctune\"\n  sysctune completions fish > ~/.config/fish/completions/sysctune.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff)
    #[command(
        after_help = "Examples:\n  sysctune man > /usr/local/share/man/man8/sysctune.8\n  sysctune man | man -l -"
    )]
    Man,
    /// A rule's documentation: what it does, why, its arithmetic, references
    #[command(
        after_help = "Examples:\n  sysctune explain tcp-memory\n  sysctune explain net.ipv4.ip_local_port_range\n  sysctune explain profile"
    )]
    Explain {
        /// A rule id (tcp-memory, port-range, ...), a key (net.ipv4.tcp_mem), or `profile`
        /// (every profile field, its unit and default)
        topic: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug, Clone)]
pub struct DoctorArgs {
    /// Destinations listed in the facts, busiest first [default: 5 in text, 20 in JSON and prometheus]
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// A previous `sysctune doctor --format json`: the kernel's incident counters are judged by how
    /// much they moved since then, with their rates
    #[arg(long, value_name = "FILE")]
    pub since: Option<PathBuf>,
    /// Where the TCP sockets are read from: auto is a NETLINK_SOCK_DIAG dump filtered in the
    /// kernel to the ports of ip_local_port_range on a live host (--root /), /proc/net/tcp and
    /// tcp6 under any other root or where netlink is refused (said in the notes)
    #[arg(long, value_enum, value_name = "FROM", default_value = "auto")]
    pub sockets: Sockets,
    /// Where `apply` keeps its record, as a path inside the root: the plan drift of the facts
    /// and metrics (what `sysctune status` reports)
    #[arg(long, value_name = "DIR", default_value = crate::apply::DEFAULT_STATE_DIR)]
    pub state_dir: String,
}

#[derive(Subcommand, Debug)]
pub enum ProfilesAction {
    /// Print a built-in profile as TOML; with --resolved, any profile (a built-in or a path)
    /// with what it extends merged in
    Show {
        name: String,
        /// Print the merged result of the `extends` chain (fields not given are the parent's)
        #[arg(long)]
        resolved: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// A built-in profile name (reverse-proxy, batch-client, web-server, database) or a path to a TOML file
    #[arg(long, short = 'p', value_name = "P")]
    pub profile: String,
    /// Override one profile field: FIELD=VALUE (dotted path, TOML value), e.g. connections.concurrent=860000
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub sets: Vec<String>,
    /// The drop-in file, as a path inside the root
    #[arg(long, value_name = "PATH", default_value = crate::plan::DEFAULT_DROPIN)]
    pub dropin: String,
    /// Restrict to keys matching GLOB (repeatable), e.g. 'net.ipv4.*'
    #[arg(long, value_name = "GLOB")]
    pub only: Vec<String>,
    /// Exit 1 when changes are pending (a live value or the drop-in differs)
    #[arg(long)]
    pub exit_code: bool,
    /// Plan from snapshots (files or directories of *.json) instead of this host: one plan per host.
    /// `-` reads the paths from stdin, `@LIST` from the file LIST, one per line
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub snapshot: Vec<PathBuf>,
    /// With --snapshot: write each host's drop-in to DIR/HOST/<drop-in path> (HOST: the
    /// snapshot's file name without .json), for a config repository to review
    #[arg(long, value_name = "DIR", requires = "snapshot")]
    pub output_dir: Option<PathBuf>,
    /// Let the profile pin KEY although it is dangerous (repeatable). Without it, pins of
    /// kernel.core_pattern = '|...' or '@...', kernel.modprobe, kernel.hotplug,
    /// kernel.poweroff_cmd, fs.binfmt_misc.*, vm.drop_caches and vm.compact_memory are refused
    #[arg(long = "allow-key", value_name = "KEY")]
    pub allow_keys: Vec<String>,
    /// sysctune's state directory, as a path inside the root: the lock, the rollback record
    /// and what was applied (keys an earlier apply set are returned to their boot value
    /// when they leave management)
    #[arg(long, value_name = "DIR", default_value = crate::apply::DEFAULT_STATE_DIR)]
    pub state_dir: String,
    /// With --format kubernetes: the container image (with sysctune in it) the node
    /// DaemonSet runs [default: sysctune:VERSION]
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct StateArgs {
    /// Where the rollback record lives, as a path inside the root
    #[arg(long, value_name = "DIR", default_value = crate::apply::DEFAULT_STATE_DIR)]
    pub state_dir: String,
    /// Seconds to wait for another apply or rollback to finish before failing
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub lock_timeout: u64,
}

#[derive(Args, Debug, Clone)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Print what rollback would write, and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Accept a record whose drop-in is outside the sysctl.d directories (an apply made
    /// with --allow-any-dropin-path)
    #[arg(long)]
    pub allow_any_dropin_path: bool,
    /// Accept this dangerous key in the record (a key whose value runs a program, or a
    /// write-only trigger); repeatable
    #[arg(long = "allow-key", value_name = "KEY")]
    pub allow_keys: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Seconds to wait for another apply or rollback to finish before failing
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub lock_timeout: u64,
    /// Write only the drop-in; leave the live values alone
    #[arg(long, conflicts_with = "no_file")]
    pub no_live: bool,
    /// Apply only the live values; leave the drop-in alone
    #[arg(long)]
    pub no_file: bool,
    /// Show the plan and write nothing (the same as `sysctune plan`)
    #[arg(long)]
    pub dry_run: bool,
    /// Allow --dropin outside the sysctl.d directories (systemd-sysctl will not read it there)
    #[arg(long)]
    pub allow_any_dropin_path: bool,
    /// Apply a plan apply would refuse: one with an error finding, or a value that would
    /// break the host now (tcp_mem below what TCP uses, strict overcommit below
    /// Committed_AS, a port range below the ports in use). Never a profile's [host].
    #[arg(long)]
    pub force: bool,
}

/// Where the TCP sockets are read from (`doctor --sockets`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Sockets {
    /// Netlink on a live host (`--root /`), falling back to /proc/net/tcp where it is
    /// refused; /proc/net/tcp under any other root.
    #[default]
    Auto,
    /// NETLINK_SOCK_DIAG only: an error where it cannot be used.
    Netlink,
    /// `ROOT/proc/net/tcp` and `tcp6` only.
    Proc,
}

impl From<Sockets> for crate::host::sockets::Want {
    fn from(s: Sockets) -> Self {
        use crate::host::sockets::Want;
        match s {
            Sockets::Auto => Want::Auto,
            Sockets::Netlink => Want::Netlink,
            Sockets::Proc => Want::Proc,
        }
    }
}
