//! A host's TCP sockets in a port range, the way `ss` reads them on a live host: a
//! NETLINK_SOCK_DIAG dump the kernel filters to the range ([`super::sock_diag`]), else (under
//! another root, or where netlink is refused) `/proc/net/tcp` and `tcp6`
//! ([`super::tcp_table`]).

use serde::Serialize;

use super::Root;
use super::sock_diag::{self, DiagError};
use super::tcp_table::{self, PortScan, TableRead};
use crate::error::{Error, Result};

/// Where to read the sockets from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Want {
    /// Netlink on a live host (`--root /`), falling back to /proc/net/tcp where it is
    /// refused; /proc/net/tcp under any other root.
    #[default]
    Auto,
    /// NETLINK_SOCK_DIAG only: an error where it cannot be used.
    Netlink,
    /// `ROOT/proc/net/tcp` and `tcp6` only.
    Proc,
}

/// Where the sockets of a report came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `/proc/net/tcp` and `tcp6`: every socket.
    #[default]
    Proc,
    /// A NETLINK_SOCK_DIAG dump of the sockets with a local port in the range.
    Netlink,
}

/// The TCP sockets of the range `lo..=hi` (and more, from /proc/net/tcp) as `want` says:
/// the scan, what was read, the source, and a note when netlink was refused.
pub fn read(
    root: &Root,
    lo: u32,
    hi: u32,
    reserved: &[(u32, u32)],
    want: Want,
) -> Result<(PortScan, Vec<TableRead>, Source, Option<String>)> {
    let proc = |note: Option<String>| -> Result<_> {
        let mut scan = PortScan::new(lo, hi, reserved);
        let tables = tcp_table::scan_tables(root, &mut scan)?;
        Ok((scan, tables, Source::Proc, note))
    };
    let netlink_error = |e: String| Error::host(std::path::Path::new("netlink"), e);
    match (want, root.is_host()) {
        (Want::Proc, _) | (Want::Auto, false) => proc(None),
        (Want::Netlink, false) => Err(Error::input(format!(
            "--sockets netlink reads the running kernel's sockets, not those of --root {}: use --sockets \
             proc (or auto) with --root",
            root.shown("/").display()
        ))),
        (Want::Netlink | Want::Auto, true) => {
            let mut scan = PortScan::new(lo, hi, reserved);
            match sock_diag::scan_sockets(lo, hi, &mut scan) {
                Ok(read) => Ok((scan, read, Source::Netlink, None)),
                Err(DiagError::Unavailable(why, _)) if want == Want::Auto => proc(Some(format!(
                    "{why}: the sockets were read from /proc/net/tcp and tcp6 instead (every socket \
                     formatted as text, slower on a big host)"
                ))),
                Err(e) => Err(netlink_error(e.to_string())),
            }
        }
    }
}
