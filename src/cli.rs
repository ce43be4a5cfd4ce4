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
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Colour: auto (NO_COLOR and non-terminals mean never), always, never
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Also show each rule's arithmetic, step by step
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
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
        after_help = "Examples:\n  sysctune show\n  sysctune show net.ipv4.tcp_mem vm.overcommit_memory\n  sysctune --root /srv/image show --format json"
    )]
    Show {
        /// Keys to show (dotted or slashed); all known keys when none
        keys: Vec<String>,
    },
    /// The recommendation: keys, current and recommended values, why, capacity, findings, drop-in diff
    #[command(
        after_help = "Examples:\n  sysctune plan --profile reverse-proxy\n  sysctune plan --profile ./edge.toml --set connections.concurrent=860000 -v\n  sysctune plan --profile batch-client --only 'net.ipv4.*' --exit-code --format json"
    )]
    Plan(PlanArgs),
    /// List the built-in profiles, or print one as TOML to start from
    #[command(
        after_help = "Examples:\n  sysctune profiles\n  sysctune profiles show reverse-proxy > my-proxy.toml"
    )]
    Profiles {
        #[command(subcommand)]
        action: Option<ProfilesAction>,
    },
    /// A rule's documentation: what it does, why, its arithmetic, references
    #[command(
        after_help = "Examples:\n  sysctune explain tcp-memory\n  sysctune explain net.ipv4.ip_local_port_range"
    )]
    Explain {
        /// A rule id (tcp-memory, port-range, ...) or a key (net.ipv4.tcp_mem)
        topic: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProfilesAction {
    /// Print a built-in profile as TOML
    Show { name: String },
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
}
