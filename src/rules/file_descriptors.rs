//! Rule `file-descriptors`: room in the file table and per process for every socket. See [`DOC`].

use super::{Code, Context, Outcome, Rule, Severity};
use crate::units::{Dec4, grouped};

pub const DOC: &str = "\
What it does
  Makes sure the host-wide file table (fs.file-max) holds every connection of the
  profile plus the files already open, and that one process may open its share of them
  (fs.nr_open, the ceiling of RLIMIT_NOFILE). It only ever raises the two limits, and
  tells you to raise RLIMIT_NOFILE (LimitNOFILE= in the service unit) to match.

Why
  Every socket is a file descriptor. When the file table is full, socket() and accept()
  fail with ENFILE (\"Too many open files in system\"); when a process reaches its
  RLIMIT_NOFILE they fail with EMFILE. RLIMIT_NOFILE cannot be raised above fs.nr_open:
  setrlimit() fails with EPERM, so fs.nr_open must go up first.

Arithmetic
    conns       = connections.concurrent + outbound.concurrent
    fds_total   = ceil(conns × headroom)
    file_max'   = max(current, round_up_1024(fds_total + file_nr_allocated))
    per_process = ceil(fds_total / connections.processes) + 1024
    nr_open'    = max(current, round_up_1024(per_process)), within 64..=2147483584
  file_nr_allocated is the first field of fs.file-nr: the file handles open now. The
  1024 is what a process needs besides its sockets: shared libraries, logs, data files,
  pipes (1024 is the kernel's default soft RLIMIT_NOFILE, and PostgreSQL's
  max_files_per_process is 1000).

Choices
  - per_process adds a floor of 1024 descriptors for what is not a socket, so the advice
    is never a limit a real process could not start with (a database with one backend
    per connection needs 1 socket and ~1000 files each). fs.file-max is not raised for
    it: file_nr_allocated already counts the files the processes hold now.
  - Both keys are managed whenever conns > 0, even when they keep their current values.
  - fs.file-nr absent or unreadable: nothing is counted as already open (0).
  - fs.nr_open cannot exceed 2147483584 (the kernel's limit, INT_MAX rounded down to a
    multiple of 64). When round_up_1024(per_process) passes it but per_process fits, the
    maximum is recommended without complaint; when per_process itself is above it, the
    maximum is recommended with an error finding: spread the connections over more
    processes.
  - fs.file-max is capped at LONG_MAX (9223372036854775807), the most the kernel takes.
  - A current value outside what the kernel accepts is brought back into range.
  - An info finding gives the RLIMIT_NOFILE to set, since that is not a sysctl.

References
  - Documentation/admin-guide/sysctl/fs.rst: file-max, file-nr, nr_open.
  - fs/file_table.c: alloc_empty_file() (ENFILE once files_stat.nr_files reaches
    fs.file-max, \"VFS: file-max limit reached\"); fs/file.c: sysctl_nr_open_max,
    expand_files() (EMFILE above RLIMIT_NOFILE); kernel/sys.c: do_prlimit() (EPERM when
    the new limit is above fs.nr_open); setrlimit(2).
  - systemd.exec(5): LimitNOFILE=.
  - The article (a 2018 post-mortem): a reverse proxy holding 860 000 connections.
";

const FILE_MAX: &str = "fs.file-max";
const NR_OPEN: &str = "fs.nr_open";
const FILE_NR: &str = "fs.file-nr";
/// The kernel's `sysctl_nr_open_max` on 64-bit: `INT_MAX & -BITS_PER_LONG`.
pub const NR_OPEN_MAX: u128 = 2147483584;
pub const NR_OPEN_MIN: u128 = 64;
const FILE_MAX_MAX: u128 = i64::MAX as u128;
/// Descriptors a process needs besides its sockets (libraries, logs, data files): the
/// kernel's default soft RLIMIT_NOFILE.
pub const OTHER_FDS_PER_PROCESS: u128 = 1024;

pub struct FileDescriptors;

impl Rule for FileDescriptors {
    fn code(&self) -> Code {
        Code::FileDescriptors
    }

    fn keys(&self) -> &'static [&'static str] {
        &[FILE_MAX, NR_OPEN]
    }

    fn doc(&self) -> &'static str {
        DOC
    }

    fn evaluate(&self, ctx: &Context) -> Outcome {
        let mut out = Outcome::default();
        let id = self.code();
        let facts = ctx.facts;
        let profile = ctx.profile;
        let conns = profile.conns();
        if conns == 0 {
            return out;
        }
        let processes = profile.connections.processes.max(1);
        let fds = fds_total(conns, profile.headroom);
        out.step(format!(
            "fds_total = ceil(conns × headroom) = ceil({conns} × {}) = {fds} file descriptors",
            profile.headroom
        ));

        // fs.file-max: the whole host.
        if facts.value(FILE_MAX).is_none() {
            out.absent(id, FILE_MAX);
        } else {
            let allocated = facts
                .ints(FILE_NR)
                .and_then(|v| v.first().copied())
                .map_or(0, |n| n.clamp(0, u64::MAX as i128) as u128);
            let current = facts.int(FILE_MAX);
            let target = round_up_1024(fds.saturating_add(allocated)).min(FILE_MAX_MAX);
            let cur = current.map_or(0, |c| c.clamp(0, FILE_MAX_MAX as i128) as u128);
            let new = cur.max(target);
            out.step(format!(
                "file_max' = max(current {}, round_up_1024(fds_total {fds} + allocated {allocated})) \
                 = max({cur}, {target}) = {new}",
                current.map_or("unreadable".to_string(), |c| c.to_string())
            ));
            let reason = if current == Some(new as i128) {
                format!(
                    "already covers {} fds + {} open now",
                    grouped(fds),
                    grouped(allocated)
                )
            } else {
                format!(
                    "{} fds + {} open now, rounded up to 1024",
                    grouped(fds),
                    grouped(allocated)
                )
            };
            out.set(FILE_MAX, new.to_string(), reason);
        }

        // fs.nr_open: one process's share.
        let sockets = fds.div_ceil(processes as u128);
        let per_process = sockets.saturating_add(OTHER_FDS_PER_PROCESS);
        out.step(format!(
            "per_process = ceil(fds_total / processes) + {OTHER_FDS_PER_PROCESS} other files \
             = ceil({fds} / {processes}) + {OTHER_FDS_PER_PROCESS} = {per_process}"
        ));
        let limit = per_process.min(NR_OPEN_MAX);
        if facts.value(NR_OPEN).is_none() {
            out.absent(id, NR_OPEN);
        } else {
            let current = facts.int(NR_OPEN);
            let cur = current.map_or(NR_OPEN_MIN, |c| {
                c.clamp(NR_OPEN_MIN as i128, NR_OPEN_MAX as i128) as u128
            });
            let target = round_up_1024(per_process).min(NR_OPEN_MAX);
            let new = cur.max(target);
            out.step(format!(
                "nr_open' = min(max(current {}, round_up_1024({per_process})), {NR_OPEN_MAX}) = {new}",
                current.map_or("unreadable".to_string(), |c| c.to_string())
            ));
            let reason = if per_process > NR_OPEN_MAX {
                format!(
                    "{} fds per process exceed the kernel maximum",
                    grouped(per_process)
                )
            } else if current == Some(new as i128) {
                format!("already covers {} fds per process", grouped(per_process))
            } else {
                format!("{} fds per process, rounded up to 1024", grouped(per_process))
            };
            out.set(NR_OPEN, new.to_string(), reason);
        }

        if per_process > NR_OPEN_MAX {
            out.finding(
                Severity::Error,
                id,
                format!(
                    "{} needs {} file descriptors ({} in all), more than the kernel allows one \
                     process (fs.nr_open at most {NR_OPEN_MAX}); spread the connections over at \
                     least {} processes (connections.processes).",
                    each_process(processes),
                    grouped(per_process),
                    grouped(fds),
                    grouped(fds.div_ceil(NR_OPEN_MAX))
                ),
            );
        }
        out.finding(
            Severity::Info,
            id,
            format!(
                "Set RLIMIT_NOFILE (LimitNOFILE= in the service unit) to at least {limit} for {} \
                 holding the connections ({} sockets + {OTHER_FDS_PER_PROCESS} for its other \
                 files); it is not a sysctl, and fs.nr_open must be raised first: setrlimit() \
                 above fs.nr_open fails with EPERM.",
                each_process(processes).to_lowercase(),
                grouped(sockets)
            ),
        );
        out
    }
}

fn each_process(processes: u64) -> String {
    if processes == 1 {
        "The one process".to_string()
    } else {
        format!("Each of the {processes} processes")
    }
}

/// `ceil(conns × headroom)`, saturating.
pub fn fds_total(conns: u128, headroom: Dec4) -> u128 {
    conns
        .checked_mul(headroom.0 as u128)
        .map_or(u128::MAX, |p| p.div_ceil(Dec4::SCALE))
}

/// The next multiple of 1024 at or above `n`, saturating.
pub fn round_up_1024(n: u128) -> u128 {
    n.checked_next_multiple_of(1024).unwrap_or(u128::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::host::Facts;

    fn run_any(facts: &Facts, toml: &str) -> Outcome {
        evaluate_checked(&FileDescriptors, facts, &profile(toml), None)
    }

    /// Also: reasons under 70 characters.
    fn run(facts: &Facts, toml: &str) -> Outcome {
        evaluate_short(&FileDescriptors, facts, toml)
    }

    fn value<'a>(out: &'a Outcome, key: &str) -> Option<&'a str> {
        out.settings
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    fn conns(concurrent: u64, processes: u64) -> String {
        format!("headroom = 1.2\n[connections]\nconcurrent = {concurrent}\nprocesses = {processes}\n")
    }

    fn rlimit(out: &Outcome) -> &str {
        &out.findings
            .iter()
            .find(|f| f.message.contains("RLIMIT_NOFILE"))
            .unwrap()
            .message
    }

    #[test]
    fn worked_example_860000_connections() {
        assert_eq!(fds_total(860_000, Dec4(12000)), 1_032_000);
        assert_eq!(round_up_1024(1_032_000 + 2048), 1_034_240);
        assert_eq!(round_up_1024(1_032_000), 1_032_192);
        assert_eq!(round_up_1024(0), 0);
        assert_eq!(round_up_1024(1024), 1024);
        assert_eq!(round_up_1024(u128::MAX), u128::MAX);

        // the proxy host's limits are already larger: kept, and still managed
        let out = run(&proxy_host(), &conns(860_000, 1));
        assert_eq!(value(&out, FILE_MAX), Some("6500000"));
        assert_eq!(value(&out, NR_OPEN), Some("1048576"));
        assert!(out.settings.iter().all(|s| s.reason.starts_with("already")));
        assert!(rlimit(&out).contains("at least 1033024"));
        assert!(rlimit(&out).contains("1 032 000 sockets + 1024"));
        assert!(rlimit(&out).contains("EPERM"));
        assert!(rlimit(&out).contains("LimitNOFILE="));
        assert_eq!(out.findings.len(), 1);

        // smaller current limits are raised
        let facts = with(
            with(proxy_host(), FILE_MAX, Some("1000000")),
            NR_OPEN,
            Some("1024"),
        );
        let out = run(&facts, &conns(860_000, 1));
        assert_eq!(value(&out, FILE_MAX), Some("1034240"));
        assert_eq!(value(&out, NR_OPEN), Some("1033216"));
        assert!(out.steps.iter().any(|s| s.contains("= 1034240")));
    }

    #[test]
    fn processes_split_the_per_process_limit() {
        let facts = with(proxy_host(), NR_OPEN, Some("1024"));
        // 1032000 / 4 = 258000, + 1024 = 259024 → 259072
        let out = run(&facts, &conns(860_000, 4));
        assert_eq!(value(&out, NR_OPEN), Some("259072"));
        assert!(rlimit(&out).contains("at least 259024 for each of the 4 processes"));
        // ceil: 1032000 / 7 = 147428.57 → 147429, + 1024 = 148453 → 148480
        let out = run(&facts, &conns(860_000, 7));
        assert_eq!(value(&out, NR_OPEN), Some("148480"));
        assert!(rlimit(&out).contains("at least 148453"));
        // 2 000 000 in one process: above the default 1048576
        let out = run(&proxy_host(), &conns(2_000_000, 1));
        assert_eq!(value(&out, NR_OPEN), Some("2401280"));
    }

    #[test]
    fn outbound_connections_count_and_file_nr_absent_is_zero() {
        let facts = with(with(proxy_host(), FILE_NR, None), FILE_MAX, Some("100"));
        let out = run(&facts, "headroom = 1\n[outbound]\nconcurrent = 1000\n");
        assert_eq!(value(&out, FILE_MAX), Some("1024"));
        let out = run(
            &facts,
            "headroom = 1\n[outbound]\nconcurrent = 1000\n[connections]\nconcurrent = 25\n",
        );
        assert_eq!(value(&out, FILE_MAX), Some("2048"));
        // new_per_second alone holds no descriptors: no input
        let out = run(&facts, "[outbound]\nnew_per_second = 1000\n");
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn no_connections_means_nothing() {
        assert_eq!(run(&proxy_host(), ""), Outcome::default());
        assert_eq!(
            run(&proxy_host(), "[memory]\nswappiness = 10\n"),
            Outcome::default()
        );
    }

    #[test]
    fn nr_open_is_capped_at_the_kernel_maximum() {
        // 2147482000 + 1024 fits in one process but rounds up past the maximum: the maximum,
        // no error
        let out = run(
            &proxy_host(),
            "headroom = 1\n[connections]\nconcurrent = 2147482000\n",
        );
        assert_eq!(value(&out, NR_OPEN), Some("2147483584"));
        assert!(out.findings.iter().all(|f| f.severity == Severity::Info));
        // 3 000 000 000 × 1.2 in one process: the maximum and an error
        let out = run(&proxy_host(), &conns(3_000_000_000, 1));
        assert_eq!(value(&out, NR_OPEN), Some("2147483584"));
        let err = out
            .findings
            .iter()
            .find(|f| f.severity == Severity::Error)
            .unwrap();
        assert!(err.message.contains("3 600 000 000"), "{}", err.message);
        assert!(err.message.contains("at least 2 processes"), "{}", err.message);
        assert!(rlimit(&out).contains("at least 2147483584"));
        // split over two processes it fits
        let out = run(&proxy_host(), &conns(3_000_000_000, 2));
        assert_eq!(value(&out, NR_OPEN), Some("1800001536"));
        assert!(out.findings.iter().all(|f| f.severity == Severity::Info));
    }

    /// One process per connection (the database profile): the advice is the floor for
    /// the process's other files plus its socket, never a limit of 2.
    #[test]
    fn a_process_per_connection_still_needs_its_other_files() {
        let out = run(&proxy_host(), &conns(2000, 2000));
        assert!(
            rlimit(&out).contains("at least 1026 for each of the 2000 processes"),
            "{}",
            rlimit(&out)
        );
        assert!(rlimit(&out).contains("2 sockets + 1024"));
        assert_eq!(value(&out, NR_OPEN), Some("1048576"));
    }

    #[test]
    fn absent_keys_are_not_managed() {
        let facts = with(proxy_host(), FILE_MAX, None);
        let out = run(&facts, &conns(860_000, 1));
        assert_eq!(value(&out, FILE_MAX), None);
        assert_eq!(value(&out, NR_OPEN), Some("1048576"));
        assert!(
            out.findings
                .iter()
                .any(|f| f.severity == Severity::Info && f.message.contains("fs.file-max is absent"))
        );
        let mut facts = proxy_host();
        for k in [FILE_MAX, NR_OPEN, FILE_NR] {
            facts = with(facts, k, None);
        }
        let out = run(&facts, &conns(860_000, 1));
        assert!(out.settings.is_empty());
        assert_eq!(out.findings.len(), 3);
    }

    #[test]
    fn odd_current_values_and_huge_inputs_do_not_panic() {
        for (file_max, nr_open, file_nr) in [
            ("9223372036854775807", "2147483584", "2048 0 9223372036854775807"),
            ("-1", "0", "-5 0 0"),
            ("garbage", "99999999999", "1"),
            ("0", "64", ""),
            ("1 2", "1 2", "garbage"),
        ] {
            let facts = with(
                with(
                    with(proxy_host(), FILE_MAX, Some(file_max)),
                    NR_OPEN,
                    Some(nr_open),
                ),
                FILE_NR,
                Some(file_nr),
            );
            for toml in [
                conns(1, 1),
                conns(860_000, 3),
                format!(
                    "headroom = 10\n[connections]\nconcurrent = {0}\n[outbound]\nconcurrent = {0}\n",
                    i64::MAX
                ),
            ] {
                run_any(&facts, &toml);
            }
        }
        // systemd's LONG_MAX file-max is kept
        let facts = with(proxy_host(), FILE_MAX, Some("9223372036854775807"));
        let out = run(&facts, &conns(860_000, 1));
        assert_eq!(value(&out, FILE_MAX), Some("9223372036854775807"));
        assert_eq!(fds_total(u128::MAX, Dec4(12000)), u128::MAX);
    }
}
