//! The workload profile: TOML types, units, validation, `--set` overrides and the
//! built-in profiles (compiled in from `profiles/*.toml`).
//!
//! Every single-field check happens while deserialising, so the error carries the line
//! and column of the offending value. Checks that need the host (reserved memory below
//! RAM, swappiness on old kernels) happen in the plan and name the field.
//!
//! Memory sizes that depend on the host (`connections.reserved_memory`,
//! `memory.commit_target`) may be a share of RAM, `"80%"`: a [`MemSize`], kept as written
//! and resolved against the host's RAM (MemTotal, or `host.ram`) by
//! [`Connections::reserved_memory`] and [`Memory::commit_target`], so one profile fits
//! hosts of every size.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys;
use crate::units::{self, Dec4};

/// Every profile field, its unit and default (`sysctune explain profile`; checked against
/// the fields the parser accepts by a test).
pub const REFERENCE: &str = include_str!("../docs/profile.md");

/// Built-in profiles: (name, TOML source).
pub const BUILTIN: &[(&str, &str)] = &[
    ("reverse-proxy", include_str!("../profiles/reverse-proxy.toml")),
    ("batch-client", include_str!("../profiles/batch-client.toml")),
    ("web-server", include_str!("../profiles/web-server.toml")),
    ("database", include_str!("../profiles/database.toml")),
];

/// A validated profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Profile {
    pub name: String,
    pub description: Option<String>,
    pub headroom: Dec4,
    pub host: HostOverride,
    pub connections: Connections,
    pub outbound: Outbound,
    pub memory: Memory,
    /// Explicit pins: canonical key → normalised value, in the order given.
    pub sysctl: Vec<(String, String)>,
}

/// A memory size as a profile gives it: bytes, or a share of the host's RAM (`"80%"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemSize {
    Bytes(u64),
    /// A share of RAM in ten-thousandths (`"80%"` → `Dec4(8000)`), 0 < share ≤ 1.
    ShareOfRam(Dec4),
}

impl MemSize {
    /// The size in bytes on a host with `ram` bytes of RAM: a share is
    /// `floor(ram × share)`, exact (a share "P%" is P/100 of MemTotal, not of
    /// MemTotal − hugetlb). Never more than `ram` for a share.
    pub fn bytes(self, ram: u64) -> u64 {
        match self {
            MemSize::Bytes(b) => b,
            // share ≤ 1, so the result fits in u64
            MemSize::ShareOfRam(s) => u64::try_from(s.mul_floor(ram as u128)).unwrap_or(ram),
        }
    }

    /// `15 GiB`, or `80% of RAM = 49.6 GiB` on a host with `ram` bytes.
    pub fn describe(self, ram: u64) -> String {
        match self {
            MemSize::Bytes(b) => units::human_bytes(b as u128),
            MemSize::ShareOfRam(s) => format!(
                "{} of RAM = {}",
                s.percent(),
                units::human_bytes(self.bytes(ram) as u128)
            ),
        }
    }
}

impl fmt::Display for MemSize {
    /// `15 GiB` or `80%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemSize::Bytes(b) => f.write_str(&units::human_bytes(*b as u128)),
            MemSize::ShareOfRam(s) => f.write_str(&s.percent()),
        }
    }
}

impl Serialize for MemSize {
    /// Bytes as an integer, a share as the string it was written as (`"80%"`).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MemSize::Bytes(b) => s.serialize_u64(*b),
            MemSize::ShareOfRam(share) => s.collect_str(&share.percent()),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HostOverride {
    pub ram: Option<u64>,
    pub swap: Option<u64>,
    pub page_size: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Connections {
    pub concurrent: u64,
    /// `concurrent = "fit"`: as many as the host's TCP budget holds, resolved by
    /// [`resolve`] before the rules run (then `concurrent` holds the figure).
    pub concurrent_fit: bool,
    pub rmem_default: Option<u64>,
    pub wmem_default: Option<u64>,
    /// `rmem_default` and `wmem_default` are ceilings: a host default already lower is kept
    /// (a profile that shrinks buffers never raises one). Applied by [`resolve`].
    pub defaults_at_most: bool,
    pub average_memory: Option<u64>,
    /// `average_memory = "observed"`: from this host's sockstat, resolved by [`resolve`].
    pub average_observed: bool,
    /// Kernel memory per connection outside tcp_mem (socket, inode, file, dentry, epoll
    /// item: ~3.7 KiB on 6.x), which the TCP budget leaves free.
    pub control_block: u64,
    pub tcp_memory_share: Dec4,
    /// Bytes or a share of RAM: read it with [`Connections::reserved_memory`].
    pub reserved_memory: MemSize,
    pub shrink_buffers_to_fit: bool,
    /// Bits per second.
    pub bandwidth: Option<u64>,
    /// Nanoseconds.
    pub rtt: Option<u64>,
    pub processes: u64,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            concurrent: 0,
            concurrent_fit: false,
            rmem_default: None,
            wmem_default: None,
            defaults_at_most: false,
            average_memory: None,
            average_observed: false,
            control_block: 4096,
            tcp_memory_share: Dec4(7500),
            reserved_memory: MemSize::Bytes(0),
            shrink_buffers_to_fit: false,
            bandwidth: None,
            rtt: None,
            processes: 1,
        }
    }
}

/// Connections this host opens (it is the client).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outbound {
    /// New connections per second to each destination.
    pub new_per_second: u64,
    /// Connections open at once to each destination.
    pub concurrent: u64,
    /// Backend address:port pairs the host opens connections to, each at
    /// `new_per_second` (≥ 1): each has its own ports, but they share TIME_WAIT's cap.
    pub destinations: u64,
    /// The backends are on this host (loopback), where `tcp_tw_reuse = 2` applies.
    pub loopback: bool,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            new_per_second: 0,
            concurrent: 0,
            destinations: 1,
            loopback: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overcommit {
    Heuristic,
    Strict,
    Always,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOom {
    Kill,
    Panic,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    pub overcommit: Option<Overcommit>,
    /// Bytes or a share of RAM: read it with [`Memory::commit_target`].
    pub commit_target: Option<MemSize>,
    pub swappiness: Option<u32>,
    pub on_oom: Option<OnOom>,
}

impl Profile {
    /// `connections.concurrent + outbound.concurrent`: every connection holds buffers
    /// and a file descriptor.
    pub fn conns(&self) -> u128 {
        self.connections.concurrent as u128 + self.outbound.concurrent as u128
    }
}

impl Connections {
    /// `connections.reserved_memory` in bytes on a host with `ram` bytes of RAM (the
    /// effective MemTotal: `host.ram` when the profile gives it); a share of RAM is
    /// resolved exactly, `floor(ram × share)`.
    pub fn reserved_memory(&self, ram: u64) -> u64 {
        self.reserved_memory.bytes(ram)
    }
}

impl Memory {
    /// `memory.commit_target` in bytes on a host with `ram` bytes of RAM, as
    /// [`Connections::reserved_memory`].
    pub fn commit_target(&self, ram: u64) -> Option<u64> {
        self.commit_target.map(|t| t.bytes(ram))
    }
}

// ---------------------------------------------------------------------------------------
// Raw TOML types. Each value type checks itself, so errors point at the value.

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a profile: a TOML document with at least name = \"...\""
)]
struct RawProfile {
    name: Name,
    /// Read by [`load`] (the parent's fields are merged in before this is parsed).
    #[allow(dead_code)]
    extends: Option<String>,
    description: Option<String>,
    headroom: Option<Decimal<10_000, 100_000, false>>,
    #[serde(default)]
    host: RawHost,
    #[serde(default)]
    connections: RawConnections,
    #[serde(default)]
    outbound: RawOutbound,
    #[serde(default)]
    memory: RawMemory,
    #[serde(default)]
    sysctl: Pins,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table [host] (ram, swap, page_size)")]
struct RawHost {
    ram: Option<Size<1>>,
    swap: Option<Size<0>>,
    page_size: Option<PageSize>,
}

#[derive(Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table [connections] (concurrent, rmem_default, ...)"
)]
struct RawConnections {
    concurrent: Option<Concurrent>,
    rmem_default: Option<Size<4096, INT_MAX>>,
    wmem_default: Option<Size<4096, INT_MAX>>,
    defaults_at_most: Option<bool>,
    average_memory: Option<Average>,
    control_block: Option<Size<0>>,
    tcp_memory_share: Option<Decimal<0, 10_000, true>>,
    reserved_memory: Option<RamSize<0>>,
    shrink_buffers_to_fit: Option<bool>,
    bandwidth: Option<Bandwidth>,
    rtt: Option<Duration>,
    processes: Option<Count<1>>,
}

#[derive(Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table [outbound] (new_per_second, concurrent, destinations, loopback)"
)]
struct RawOutbound {
    new_per_second: Option<Count<0>>,
    concurrent: Option<Count<0>>,
    destinations: Option<Count<1>>,
    loopback: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table [memory] (overcommit, commit_target, swappiness, on_oom)"
)]
struct RawMemory {
    overcommit: Option<Overcommit>,
    commit_target: Option<RamSize<1>>,
    swappiness: Option<Count<0>>,
    on_oom: Option<OnOom>,
}

/// A profile name: it is written into the drop-in's header, so only plain characters.
struct Name(String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok {
            Ok(Name(s))
        } else {
            Err(de::Error::custom(format!(
                "name {s:?} is not valid: use 1 to 64 letters, digits, '-', '_' or '.'"
            )))
        }
    }
}

/// A size in bytes, at least `MIN`: an integer (bytes) or a string with a unit.
struct Size<const MIN: u64, const MAX: u64 = { u64::MAX }>(u64);

/// tcp_rmem and tcp_wmem hold C ints: at most 2147483647 bytes.
const INT_MAX: u64 = i32::MAX as u64;

/// Reads a size in bytes (the checks against MIN and MAX come after: [`Size::check`]).
struct SizeV<const MAX: u64>;

impl<const MAX: u64> Visitor<'_> for SizeV<MAX> {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a size: an integer number of bytes or a string such as \"43KiB\" or \"62GiB\"")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| {
            E::custom(format!(
                "{v} is negative; a size is ≥ 0 (bytes, or a string such as \"43KiB\")"
            ))
        })
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    // TOML integers beyond 64 bits arrive here.
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<u64, E> {
        match u128::try_from(v) {
            Ok(v) => self.visit_u128(v),
            Err(_) => Err(E::custom(format!(
                "{v} is negative; a size is ≥ 0 (bytes, or a string such as \"43KiB\")"
            ))),
        }
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| {
            E::custom(format!(
                "{v} bytes is too large; at most {MAX} bytes ({})",
                units::human_bytes(MAX as u128)
            ))
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        Err(E::custom(format!(
            "{v} is not a whole number of bytes; write a size with a unit as a string, e.g. \"1.5GiB\""
        )))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        if units::is_share(v) {
            return Err(E::custom(format!(
                "{v:?}: a share of RAM is not valid here; only connections.reserved_memory and memory.commit_target may be one. Give a size, e.g. \"43KiB\" or \"62GiB\""
            )));
        }
        units::parse_size(v).map_err(E::custom)
    }
}

impl<const MIN: u64, const MAX: u64> Size<MIN, MAX> {
    fn check<E: de::Error>(bytes: u64) -> Result<Self, E> {
        if bytes < MIN {
            let min = if MIN == 1 {
                "more than 0".to_string()
            } else {
                format!("at least {MIN} bytes ({})", units::human_bytes(MIN as u128))
            };
            return Err(E::custom(format!("{bytes} bytes is too small; it must be {min}")));
        }
        if bytes > MAX {
            return Err(E::custom(format!(
                "{bytes} bytes is too large; at most {MAX} bytes ({}), the kernel's limit",
                units::human_bytes(MAX as u128)
            )));
        }
        Ok(Size(bytes))
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Size<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::check(d.deserialize_any(SizeV::<MAX>)?)
    }
}

/// A visitor that reads the string `WORD` as `None` and anything else with `inner`:
/// `"fit"`, `"observed"` beside a number, without going through `toml::Value` (which
/// cannot hold integers beyond i64, so the inner visitor's messages for them are kept).
struct OrWord<V> {
    word: &'static str,
    inner: V,
    also: &'static str,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for OrWord<V> {
    type Value = Option<V::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)?;
        write!(f, ", or {}", self.also)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.inner.visit_i64(v).map(Some)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.inner.visit_u64(v).map(Some)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
        self.inner.visit_i128(v).map(Some)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
        self.inner.visit_u128(v).map(Some)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.inner.visit_f64(v).map(Some)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v.trim() == self.word {
            return Ok(None);
        }
        let also = self.also;
        self.inner
            .visit_str::<E>(v)
            .map(Some)
            .map_err(|e: E| E::custom(format!("{e}; or {also}")))
    }
}

/// A memory size that depends on the host: a [`Size`] (at least `MIN` bytes) or a share
/// of RAM, `"80%"` (more than 0 %, at most 100 %, at most 2 decimal places).
struct RamSize<const MIN: u64>(MemSize);

impl<'de, const MIN: u64> Deserialize<'de> for RamSize<MIN> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A share is a string ending in '%'; anything else is read as a size.
        let value = toml::Value::deserialize(d)?;
        if let toml::Value::String(s) = &value
            && units::is_share(s)
        {
            return units::parse_share(s)
                .map(|share| RamSize(MemSize::ShareOfRam(share)))
                .map_err(de::Error::custom);
        }
        Size::<MIN>::deserialize(value)
            .map(|Size(b)| RamSize(MemSize::Bytes(b)))
            .map_err(|e| de::Error::custom(e.message().trim_end()))
    }
}

/// `connections.concurrent`: a count, or `"fit"` (as many as the host's TCP budget holds).
enum Concurrent {
    Count(u64),
    Fit,
}

impl<'de> Deserialize<'de> for Concurrent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = OrWord {
            word: "fit",
            inner: CountV,
            also: "\"fit\": as many as the host's TCP budget holds",
        };
        match d.deserialize_any(v)? {
            None => Ok(Concurrent::Fit),
            Some(n) => Count::<0>::check(n).map(|Count(n)| Concurrent::Count(n)),
        }
    }
}

/// `connections.average_memory`: a size, or `"observed"` (from this host's sockstat).
enum Average {
    Size(u64),
    Observed,
}

impl<'de> Deserialize<'de> for Average {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = OrWord {
            word: "observed",
            inner: SizeV::<{ u64::MAX }>,
            also: "\"observed\": measured from this host's /proc/net/sockstat",
        };
        match d.deserialize_any(v)? {
            None => Ok(Average::Observed),
            Some(b) => Size::<1>::check(b).map(|Size(b)| Average::Size(b)),
        }
    }
}

/// A whole number ≥ `MIN`.
struct Count<const MIN: u64>(u64);

/// Reads a whole number (the check against MIN comes after: [`Count::check`]).
struct CountV;

impl Visitor<'_> for CountV {
    type Value = i128;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i128, E> {
        Ok(v as i128)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i128, E> {
        Ok(v as i128)
    }
    // TOML integers beyond 64 bits arrive here.
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<i128, E> {
        Ok(v)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<i128, E> {
        Ok(i128::try_from(v).unwrap_or(i128::MAX))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i128, E> {
        Err(E::custom(format!("{v} is not a whole number")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i128, E> {
        v.trim()
            .parse::<i128>()
            .map_err(|_| E::custom(format!("{v:?} is not a whole number")))
    }
}

impl<const MIN: u64> Count<MIN> {
    fn check<E: de::Error>(n: i128) -> Result<Self, E> {
        if n < MIN as i128 {
            let what = if n < 0 { "negative" } else { "too small" };
            return Err(E::custom(format!(
                "{n} is {what}; it must be a whole number ≥ {MIN}"
            )));
        }
        u64::try_from(n)
            .map(Count)
            .map_err(|_| E::custom(format!("{n} is too large; at most {}", u64::MAX)))
    }
}

impl<'de, const MIN: u64> Deserialize<'de> for Count<MIN> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::check(d.deserialize_any(CountV)?)
    }
}

/// A decimal with at most 4 places in `MIN..=MAX` ten-thousandths (`MIN` exclusive when
/// `EXCL`). TOML floats are read back through their shortest decimal text, so `1.2` is
/// exactly 12000/10000.
struct Decimal<const MIN: u64, const MAX: u64, const EXCL: bool>(Dec4);

impl<'de, const MIN: u64, const MAX: u64, const EXCL: bool> Deserialize<'de> for Decimal<MIN, MAX, EXCL> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        enum Raw {
            Text(String),
            Float(f64),
        }
        struct V;
        impl Visitor<'_> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal number such as 1.2")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
                Ok(Raw::Text(v.to_string()))
            }
            // TOML integers beyond 64 bits arrive here.
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
                Ok(Raw::Text(v.to_string()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
                Ok(Raw::Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Text(v.to_string()))
            }
        }
        let (min, max) = (Dec4(MIN), Dec4(MAX));
        let valid = if EXCL {
            format!("valid: {min} < value ≤ {max}")
        } else {
            format!("valid: {min} ≤ value ≤ {max}")
        };
        let text = match d.deserialize_any(V)? {
            Raw::Float(v) if !v.is_finite() => {
                return Err(de::Error::custom(format!("{v} is not a number; {valid}")));
            }
            Raw::Float(v) => {
                // 1e300 written out is 301 digits: show floats far from 1 as TOML wrote them.
                let far = v != 0.0 && !(1e-4..1e15).contains(&v.abs());
                let shown = if far { format!("{v:e}") } else { format!("{v}") };
                if v < MIN as f64 / 1e4 || v > MAX as f64 / 1e4 {
                    return Err(de::Error::custom(format!("{shown} is out of range; {valid}")));
                }
                if far {
                    return Err(de::Error::custom(format!(
                        "{shown} has more than 4 decimal places; at most 4 are allowed ({valid})"
                    )));
                }
                shown
            }
            Raw::Text(t) => t,
        };
        let value = Dec4::parse(&text).map_err(|e| de::Error::custom(format!("{e} ({valid})")))?;
        let below = if EXCL { value <= min } else { value < min };
        if below || value > max {
            return Err(de::Error::custom(format!("{text} is out of range; {valid}")));
        }
        Ok(Decimal(value))
    }
}

struct PageSize(u64);

impl<'de> Deserialize<'de> for PageSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Size::<1>(n) = Size::<1>::deserialize(d)?;
        if n.is_power_of_two() && (4096..=1 << 20).contains(&n) {
            Ok(PageSize(n))
        } else {
            Err(de::Error::custom(format!(
                "page size {n} is not valid: a power of two from 4096 to 1 MiB (4096 on x86-64)"
            )))
        }
    }
}

struct Bandwidth(u64);

impl<'de> Deserialize<'de> for Bandwidth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = StringOrNumber::deserialize(d)?.0;
        let v = units::parse_bandwidth(&text).map_err(de::Error::custom)?;
        if v == 0 {
            return Err(de::Error::custom(
                "bandwidth must be more than 0, e.g. \"10Gbit\"",
            ));
        }
        Ok(Bandwidth(v))
    }
}

struct Duration(u64);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = StringOrNumber::deserialize(d)?.0;
        let v = units::parse_duration_ns(&text).map_err(de::Error::custom)?;
        if v == 0 {
            return Err(de::Error::custom("rtt must be more than 0, e.g. \"20ms\""));
        }
        Ok(Duration(v))
    }
}

struct StringOrNumber(String);

impl<'de> Deserialize<'de> for StringOrNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = String;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string such as \"10Gbit\" or \"20ms\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
                Ok(format!("{v}"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_string())
            }
        }
        d.deserialize_any(V).map(StringOrNumber)
    }
}

/// `[sysctl]` pins: keys validated (no escape from proc/sys), values as strings,
/// integers or arrays of integers, no control characters.
#[derive(Default)]
struct Pins(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Pins {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of \"key\" = \"value\"")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                // A set, not a scan of `out`: a profile may pin thousands of keys.
                let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
                while let Some(raw_key) = map.next_key::<String>()? {
                    let key = keys::normalize_key(&raw_key)
                        .map_err(|e| de::Error::custom(format!("[sysctl]: {e}")))?;
                    let value = map.next_value::<PinValue>()?.0;
                    let value = keys::normalize_value(&value)
                        .map_err(|e| de::Error::custom(format!("[sysctl] {key}: {e}")))?;
                    if value.is_empty() {
                        return Err(de::Error::custom(format!("[sysctl] {key}: empty value")));
                    }
                    // Kernel ranges checked here too, so the error has a line; the plan checks
                    // again against the real kernel release (vm.swappiness is 0..=100 before 5.8).
                    keys::validate(&key, &value, "unknown")
                        .map_err(|e| de::Error::custom(format!("[sysctl] {e}")))?;
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!(
                            "[sysctl]: {key} is pinned twice (as {raw_key:?} and another spelling)"
                        )));
                    }
                    out.push((key, value));
                }
                Ok(out)
            }
        }
        d.deserialize_map(V).map(Pins)
    }
}

struct PinValue(String);

impl<'de> Deserialize<'de> for PinValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            Str(String),
            Int(i64),
            Ints(Vec<i64>),
        }
        match Any::deserialize(d) {
            Ok(Any::Str(s)) => Ok(PinValue(s)),
            Ok(Any::Int(i)) => Ok(PinValue(i.to_string())),
            Ok(Any::Ints(v)) => Ok(PinValue(
                v.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" "),
            )),
            Err(_) => Err(de::Error::custom(
                "a pinned value is a string (\"4096 87380 6291456\"), an integer, or an array of integers",
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------

impl RawProfile {
    fn finish(self) -> std::result::Result<Profile, String> {
        let c = self.connections;
        let defaults = Connections::default();
        let connections = Connections {
            concurrent: match c.concurrent {
                Some(Concurrent::Count(n)) => n,
                _ => 0,
            },
            concurrent_fit: matches!(c.concurrent, Some(Concurrent::Fit)),
            rmem_default: c.rmem_default.map(|v| v.0),
            wmem_default: c.wmem_default.map(|v| v.0),
            defaults_at_most: c.defaults_at_most.unwrap_or(false),
            average_memory: match c.average_memory {
                Some(Average::Size(b)) => Some(b),
                _ => None,
            },
            average_observed: matches!(c.average_memory, Some(Average::Observed)),
            control_block: c.control_block.map_or(defaults.control_block, |v| v.0),
            tcp_memory_share: c.tcp_memory_share.map_or(defaults.tcp_memory_share, |v| v.0),
            reserved_memory: c.reserved_memory.map_or(MemSize::Bytes(0), |v| v.0),
            shrink_buffers_to_fit: c.shrink_buffers_to_fit.unwrap_or(false),
            bandwidth: c.bandwidth.map(|v| v.0),
            rtt: c.rtt.map(|v| v.0),
            processes: c.processes.map_or(1, |v| v.0),
        };
        match (connections.bandwidth, connections.rtt) {
            (Some(_), None) => return Err("connections.bandwidth is set without connections.rtt; the buffer maximum is sized from both (bandwidth × rtt)".into()),
            (None, Some(_)) => return Err("connections.rtt is set without connections.bandwidth; the buffer maximum is sized from both (bandwidth × rtt)".into()),
            _ => {}
        }
        let swappiness = match self.memory.swappiness {
            Some(Count(v)) if v > 200 => {
                return Err(format!(
                    "memory.swappiness = {v} is out of range; valid: 0..=200 (0..=100 on kernels before 5.8)"
                ));
            }
            Some(Count(v)) => Some(v as u32),
            None => None,
        };
        Ok(Profile {
            name: self.name.0,
            description: self.description,
            headroom: self.headroom.map_or(Dec4(12_000), |h| h.0),
            host: HostOverride {
                ram: self.host.ram.map(|v| v.0),
                swap: self.host.swap.map(|v| v.0),
                page_size: self.host.page_size.map(|v| v.0),
            },
            connections,
            outbound: Outbound {
                new_per_second: self.outbound.new_per_second.map_or(0, |v| v.0),
                concurrent: self.outbound.concurrent.map_or(0, |v| v.0),
                destinations: self.outbound.destinations.map_or(1, |v| v.0),
                loopback: self.outbound.loopback.unwrap_or(false),
            },
            memory: Memory {
                overcommit: self.memory.overcommit,
                commit_target: self.memory.commit_target.map(|v| v.0),
                swappiness,
                on_oom: self.memory.on_oom,
            },
            sysctl: self.sysctl.0,
        })
    }
}

/// `file:line:col: message` plus the offending line, from a toml error. It echoes what was
/// typed, so invisible characters (bidi controls, zero-width) are shown escaped
/// ([`keys::reveal`]): the message must read as what the file holds.
fn located(origin: &str, text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end();
    let out = match err.span() {
        Some(span) => {
            let start = pin_line(text, span.start, message)
                .unwrap_or(span.start)
                .min(text.len());
            let before = &text[..start];
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let col = before[line_start..].chars().count() + 1;
            let source = text[line_start..].lines().next().unwrap_or("");
            let field = field_at(text, line_start)
                .map(|f| format!("{f}: "))
                .unwrap_or_default();
            format!("{origin}:{line}:{col}: {field}{message}\n  {line} | {source}")
        }
        None => format!("{origin}: {message}"),
    };
    keys::reveal(&out).into_owned()
}

/// Errors about one `[sysctl]` pin are reported by toml at the table; point at the pin's
/// own line instead when the message names it.
fn pin_line(text: &str, span_start: usize, message: &str) -> Option<usize> {
    let rest = message.strip_prefix("[sysctl]")?;
    let rest = rest.trim_start_matches(':').trim_start();
    let key = match rest.strip_prefix("key \"") {
        Some(quoted) => quoted.split('"').next()?.to_string(),
        None => rest.split([':', ' ']).next()?.to_string(),
    };
    let mut offset = span_start;
    for line in text[span_start.min(text.len())..].split_inclusive('\n') {
        // The message shows invisible characters escaped; so must the line it is matched to.
        let revealed = keys::reveal(line);
        let t = revealed.trim_start();
        if t.starts_with(&format!("\"{key}\""))
            || t.starts_with(&format!("{key} "))
            || t.starts_with(&format!("{key}="))
        {
            return Some(offset + (revealed.len() - t.len()));
        }
        offset += line.len();
    }
    None
}

/// The dotted field name at the line starting at `line_start` (`connections.rmem_default`),
/// from the line's `key =` and the nearest `[table]` header above it.
fn field_at(text: &str, line_start: usize) -> Option<String> {
    let line = text[line_start..].lines().next()?.trim();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    if line.starts_with('[') {
        return None;
    }
    let key = line.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with('"') {
        return None;
    }
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

/// Parse profile text; `origin` names it in errors (a path, or "built-in profile NAME").
pub fn parse_text(origin: &str, text: &str) -> Result<Profile> {
    let raw: RawProfile = toml::from_str(text).map_err(|e| Error::input(located(origin, text, &e)))?;
    raw.finish().map_err(|e| Error::input(format!("{origin}: {e}")))
}

/// Find a profile by built-in name or path, merge in what it `extends`, and apply
/// `--set FIELD=VALUE` overrides.
pub fn load(spec: &str, sets: &[String]) -> Result<Profile> {
    let resolved = resolve_extends(spec)?;
    let origin = resolved.origin();
    // Checked without the overrides first, so an error in a file is not blamed on a --set.
    let profile = if resolved.chain.len() == 1 {
        // From the text, not the table: errors keep the file's line and column.
        parse_text(&origin, &resolved.text)?
    } else {
        check_table(&origin, &resolved.table)?
    };
    if sets.is_empty() {
        return Ok(profile);
    }
    let mut table = resolved.table;
    for set in sets {
        let (path, value) = parse_set(set)?;
        let set = &keys::reveal(set);
        // Check the override on its own first, so an error names it.
        let mut alone = toml::Table::new();
        alone.insert("name".into(), toml::Value::String("set".into()));
        insert_path(&mut alone, &path, value.clone(), set)?;
        let alone_text = toml::to_string(&alone).map_err(|e| Error::input(format!("--set {set}: {e}")))?;
        if let Err(e) = toml::from_str::<RawProfile>(&alone_text) {
            return Err(Error::input(format!(
                "--set {set}: {}",
                keys::reveal(e.message().trim_end())
            )));
        }
        insert_path(&mut table, &path, value, set)?;
    }
    check_table(&format!("{origin} with --set overrides"), &table)
}

/// Parse a merged table; `what` names it in errors.
fn check_table(what: &str, table: &toml::Table) -> Result<Profile> {
    let merged = toml::to_string(table).map_err(|e| Error::input(format!("{what}: {e}")))?;
    let raw: RawProfile = toml::from_str(&merged)
        .map_err(|e| Error::input(format!("{what}: {}", keys::reveal(e.message().trim_end()))))?;
    raw.finish().map_err(|e| Error::input(format!("{what}: {e}")))
}

/// How many profiles an `extends` chain may hold, the profile itself included.
pub const MAX_EXTENDS_DEPTH: usize = 8;

/// A profile with its `extends` chain merged: the table (without `extends`), the chain
/// from the profile to its furthest parent, and the profile's own text.
pub struct Resolved {
    pub table: toml::Table,
    pub chain: Vec<String>,
    pub text: String,
}

impl Resolved {
    /// `built-in profile web-server`, or `./edge.toml (extends web-server)`.
    fn origin(&self) -> String {
        match self.chain.split_first() {
            Some((first, rest)) if !rest.is_empty() => {
                format!("{first} (extends {})", rest.join(" → "))
            }
            Some((first, _)) => first.clone(),
            None => String::new(),
        }
    }

    /// The merged profile as TOML (`profiles show NAME --resolved`).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(&self.table).map_err(|e| Error::input(format!("{}: {e}", self.origin())))
    }
}

/// Read `spec` and every profile it extends: fields not given are the parent's, tables
/// (`[connections]`, `[sysctl]`, ...) merge key by key. A parent is a built-in name or a
/// path, relative to the directory of the file that names it. Each file is checked on its
/// own first, so an error in it keeps its line and column.
pub fn resolve_extends(spec: &str) -> Result<Resolved> {
    let mut chain: Vec<String> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut layers: Vec<toml::Table> = Vec::new();
    let mut own_text = None;
    let mut next = Some((spec.to_string(), None::<std::path::PathBuf>));
    while let Some((name, base)) = next.take() {
        let (origin, text, id, dir) = source_from(&name, base.as_deref()).map_err(|e| {
            if chain.is_empty() {
                e
            } else {
                Error::input(format!(
                    "{} extends {}: {e}",
                    chain.join(" → "),
                    keys::escape(&name)
                ))
            }
        })?;
        if ids.contains(&id) {
            chain.push(origin);
            return Err(Error::input(format!(
                "extends: a cycle: {}; a profile may not extend itself, directly or through another",
                chain.join(" → ")
            )));
        }
        if chain.len() == MAX_EXTENDS_DEPTH {
            chain.push(origin);
            return Err(Error::input(format!(
                "extends: the chain {} is longer than {MAX_EXTENDS_DEPTH} profiles; extend a profile closer to the one you need",
                chain.join(" → ")
            )));
        }
        // Alone: types and unknown fields, with line and column (cross-field checks wait
        // for the merged result: the parent may give the other half).
        toml::from_str::<RawProfile>(&text).map_err(|e| Error::input(located(&origin, &text, &e)))?;
        let mut table: toml::Table =
            toml::from_str(&text).map_err(|e| Error::input(located(&origin, &text, &e)))?;
        let parent = match table.remove("extends") {
            Some(toml::Value::String(p)) => Some(p),
            Some(_) => {
                return Err(Error::input(format!(
                    "{origin}: extends must be a string: a built-in profile ({}) or a path to a TOML file",
                    builtin_names().join(", ")
                )));
            }
            None => None,
        };
        if own_text.is_none() {
            own_text = Some(text);
        }
        chain.push(origin);
        ids.push(id);
        layers.push(table);
        next = parent.map(|p| (p, dir));
    }
    let mut merged = toml::Table::new();
    for layer in layers.into_iter().rev() {
        merge(&mut merged, layer);
    }
    Ok(Resolved {
        table: merged,
        chain,
        text: own_text.unwrap_or_default(),
    })
}

/// `over` onto `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// (origin for messages, text, identity for cycle checks, directory for relative parents).
fn source_from(
    spec: &str,
    base: Option<&Path>,
) -> Result<(String, String, String, Option<std::path::PathBuf>)> {
    let looks_like_path = spec.contains('/') || spec.ends_with(".toml");
    if !looks_like_path {
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == spec) {
            return Ok((
                format!("built-in profile {name}"),
                text.to_string(),
                format!("builtin:{name}"),
                None,
            ));
        }
        if base.is_some() || !Path::new(spec).exists() {
            return Err(Error::input(format!(
                "unknown profile {}: not a built-in profile ({}) and no such file",
                keys::escape(spec),
                builtin_names().join(", ")
            )));
        }
    }
    let path = match base {
        Some(dir) if Path::new(spec).is_relative() => dir.join(spec),
        _ => Path::new(spec).to_path_buf(),
    };
    let shown = path.display().to_string();
    let bytes = crate::host::fs::read_named(&path, crate::host::fs::MAX_CONFIG).map_err(|e| {
        Error::input(format!(
            "profile {shown}: {e}; give a built-in profile ({}) or a path to a TOML file",
            builtin_names().join(", ")
        ))
    })?;
    let text =
        String::from_utf8(bytes).map_err(|_| Error::input(format!("profile {shown}: not UTF-8 text")))?;
    // Lexical (no file system call): `./a.toml` and `a.toml` are one file; the depth limit
    // catches spellings this misses.
    let id: std::path::PathBuf = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    let id = id.display().to_string();
    let dir = path.parent().map(Path::to_path_buf);
    Ok((shown, text, format!("file:{id}"), dir))
}

pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

pub fn builtin_source(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// `connections.concurrent=860000` → (["connections", "concurrent"], 860000). The value
/// is parsed as a TOML value; anything that is not one (`62GiB`) is a string.
/// `sysctl.net.core.somaxconn=4096` pins a key.
fn parse_set(set: &str) -> Result<(Vec<String>, toml::Value)> {
    let shown = keys::escape(set);
    let Some((path, value)) = set.split_once('=') else {
        return Err(Error::input(format!(
            "--set {shown}: expected FIELD=VALUE, e.g. connections.concurrent=860000"
        )));
    };
    let path = path.trim();
    let value = value.trim();
    if path.is_empty() {
        return Err(Error::input(format!("--set {shown}: the field name is empty")));
    }
    let segments: Vec<String> = match path.strip_prefix("sysctl.") {
        Some(key) => vec!["sysctl".into(), key.to_string()],
        None => path.split('.').map(str::to_string).collect(),
    };
    if segments.iter().any(String::is_empty) {
        return Err(Error::input(format!(
            "--set {shown}: {} has an empty segment",
            keys::escape(path)
        )));
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    Ok((segments, parsed))
}

fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value, set: &str) -> Result<()> {
    let (last, parents) = path.split_last().expect("parse_set gives at least one segment");
    let mut cur = table;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(Error::input(format!("--set {set}: {p} is a value, not a table"))),
        };
    }
    cur.insert(last.clone(), value);
    Ok(())
}

/// Refuse the profile's pins of dangerous keys ([`keys::danger`]: a program the kernel
/// runs as root, a write-only trigger) unless `allowed` (`--allow-key`, repeatable) names
/// the key. Called wherever a profile is planned (plan, apply, show --profile) after
/// `--set` overrides are merged. Only the profile's own pins are checked: what the host's
/// sysctl.d files set is the host's state, shown and never refused.
pub fn check_pins(profile: &Profile, allowed: &[String]) -> Result<()> {
    let mut allow = Vec::new();
    for a in allowed {
        allow.push(keys::normalize_key(a).map_err(|e| Error::input(format!("--allow-key: {e}")))?);
    }
    let mut refused = Vec::new();
    let mut flags = Vec::new();
    for (key, value) in &profile.sysctl {
        if let Some(why) = keys::danger(key, value)
            && !allow.contains(key)
        {
            refused.push(format!(
                "[sysctl] {} = {} is refused: {why}",
                keys::escape(key),
                keys::escape(value)
            ));
            flags.push(format!("--allow-key {}", shell_word(key)));
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "{}\nto pin {} anyway, name {} on the command line: {}",
        refused.join("\n"),
        if flags.len() == 1 { "it" } else { "them" },
        if flags.len() == 1 { "the key" } else { "each key" },
        flags.join(" ")
    )))
}

/// A key as one shell word, for a command line to copy: single-quoted unless plain (a key
/// never holds a quote: `keys::normalize_key` refuses them).
fn shell_word(key: &str) -> String {
    let plain = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/-:@%+,".contains(c));
    if plain {
        key.to_string()
    } else {
        format!("'{key}'")
    }
}

/// Pins as a map, for lookups.
pub fn pins(profile: &Profile) -> BTreeMap<&str, &str> {
    profile
        .sysctl
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[cfg(test)]
pub(crate) fn parse_for_tests(text: &str) -> Profile {
    parse_text("test.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profile> {
        parse_text("p.toml", text)
    }

    #[test]
    fn builtins_parse() {
        for (name, text) in BUILTIN {
            let p = parse_text(name, text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&p.name, name);
        }
    }

    #[test]
    fn the_cli_md_example() {
        let p = parse(
            r#"name = "reverse-proxy"
headroom = 1.2
[connections]
concurrent = 860000
rmem_default = "43KiB"
wmem_default = "32KiB"
average_memory = "10KiB"
tcp_memory_share = 0.75
reserved_memory = "15GiB"
bandwidth = "10Gbit"
rtt = "20ms"
[sysctl]
"net.core.somaxconn" = "4096"
"net/ipv4/tcp_rmem" = [4096, 87380, 6291456]
"#,
        )
        .unwrap();
        assert_eq!(p.headroom, Dec4(12000));
        assert_eq!(p.connections.rmem_default, Some(44032));
        assert_eq!(p.connections.reserved_memory, MemSize::Bytes(15 << 30));
        assert_eq!(p.connections.rtt, Some(20_000_000));
        assert_eq!(
            p.sysctl[1],
            ("net.ipv4.tcp_rmem".to_string(), "4096 87380 6291456".to_string())
        );
    }

    #[test]
    fn errors_have_line_and_column() {
        let e = parse("name = \"x\"\n[connections]\nconcurent = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:3:1:"), "{e}");
        assert!(e.contains("unknown field"), "{e}");
        let e = parse("name = \"x\"\nheadroom = 0.9\n").unwrap_err().to_string();
        assert!(
            e.starts_with("p.toml:2:12:") && e.contains("valid: 1 ≤ value ≤ 10"),
            "{e}"
        );
        let e = parse("name = \"x\"\n[connections]\nrmem_default = \"43 KiloBytes\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown size unit"), "{e}");
        let e = parse("name = \"x\"\n[outbound]\nnew_per_second = -3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("negative"), "{e}");
        let e = parse("name = \"x\"\n[outbound]\ndestinations = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:3:16:") && e.contains("≥ 1"), "{e}");
        let e = parse("name = \"x\"\n[outbound]\nloopback = \"yes\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("boolean"), "{e}");
        let p = parse("name = \"x\"\n[outbound]\nnew_per_second = 5\n").unwrap();
        assert_eq!((p.outbound.destinations, p.outbound.loopback), (1, false));
        let p = parse("name = \"x\"\n[outbound]\ndestinations = 3\nloopback = true\n").unwrap();
        assert_eq!((p.outbound.destinations, p.outbound.loopback), (3, true));
        let e = parse("name = \"x\"\n[connections]\ntcp_memory_share = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("0 < value ≤ 1"), "{e}");
        let e = parse("name = \"x\"\n[host]\nram = 0\n").unwrap_err().to_string();
        assert!(e.contains("more than 0"), "{e}");
        let e = parse("name = \"x\"\nheadroom = 1.23456\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 4"), "{e}");
        let e = parse("name = \"x\"\n[sysctl]\n\"../../etc/passwd\" = \"1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'..'"), "{e}");
        let e = parse("name = \"x\"\n[sysctl]\n\"vm.swappiness\" = \"10\\nkernel.panic = 1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("control character"), "{e}");
        let e = parse("name = \"x\"\n[connections]\nbandwidth = \"1Gbit\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("without connections.rtt"), "{e}");
    }

    #[test]
    fn shares_of_ram() {
        let p = parse(
            "name = \"x\"\n[connections]\nreserved_memory = \"25%\"\n[memory]\ncommit_target = \"80%\"\n",
        )
        .unwrap();
        assert_eq!(p.connections.reserved_memory, MemSize::ShareOfRam(Dec4(2500)));
        assert_eq!(p.memory.commit_target, Some(MemSize::ShareOfRam(Dec4(8000))));
        // resolved exactly against the RAM, floor: 80% of 62 GiB = 53257594470.4 B
        let ram = 62u64 << 30;
        assert_eq!(p.memory.commit_target(ram), Some(53257594470));
        assert_eq!(p.connections.reserved_memory(ram), 62 << 28);
        assert_eq!(p.memory.commit_target(3), Some(2));
        assert_eq!(p.memory.commit_target(0), Some(0));
        assert_eq!(MemSize::ShareOfRam(Dec4(10_000)).bytes(u64::MAX), u64::MAX);
        assert_eq!(MemSize::ShareOfRam(Dec4(1)).bytes(u64::MAX), u64::MAX / 10_000);
        assert_eq!(
            p.memory.commit_target.unwrap().describe(ram),
            "80% of RAM = 49.6 GiB"
        );
        assert_eq!(p.memory.commit_target.unwrap().to_string(), "80%");
        assert_eq!(
            serde_json::to_value(&p.memory).unwrap()["commit_target"],
            serde_json::json!("80%")
        );
        // sizes stay sizes
        let p = parse("name = \"x\"\n[memory]\ncommit_target = \"40GiB\"\n").unwrap();
        assert_eq!(p.memory.commit_target, Some(MemSize::Bytes(40 << 30)));
        assert_eq!(p.memory.commit_target(1), Some(40 << 30));
        assert_eq!(p.connections.reserved_memory, MemSize::Bytes(0));
        let p = parse("name = \"x\"\n[connections]\nreserved_memory = 1024\n").unwrap();
        assert_eq!(p.connections.reserved_memory(1), 1024);
        // --set takes a share bare or quoted
        let p = load(
            "database",
            &[
                "memory.commit_target=80%".into(),
                "connections.reserved_memory=\"12.5%\"".into(),
            ],
        )
        .unwrap();
        assert_eq!(p.memory.commit_target, Some(MemSize::ShareOfRam(Dec4(8000))));
        assert_eq!(p.connections.reserved_memory, MemSize::ShareOfRam(Dec4(1250)));
    }

    #[test]
    fn bad_shares_name_the_field() {
        for (field, value, want) in [
            ("memory.commit_target", "\"12.345%\"", "3 decimal places"),
            ("memory.commit_target", "\"0%\"", "is 0%"),
            ("memory.commit_target", "\"100.5%\"", "more than the whole RAM"),
            ("connections.reserved_memory", "\"-1%\"", "negative"),
            ("connections.reserved_memory", "\"lots%\"", "not a number"),
            ("memory.commit_target", "0", "more than 0"),
            ("memory.commit_target", "\"1.5B\"", "whole number"),
            (
                "connections.average_memory",
                "\"5%\"",
                "a share of RAM is not valid here",
            ),
            (
                "connections.rmem_default",
                "\"5%\"",
                "a share of RAM is not valid here",
            ),
            ("host.ram", "\"50%\"", "a share of RAM is not valid here"),
        ] {
            let (table, key) = field.split_once('.').unwrap();
            let e = parse(&format!("name = \"x\"\n[{table}]\n{key} = {value}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("p.toml:3:"), "{e}");
            assert!(e.contains(&format!("{field}: ")), "{field}: {e}");
            assert!(e.contains(want), "{field} = {value}: {e}");
            let e = load("database", &[format!("{field}={value}")])
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("--set {field}=")) && e.contains(want),
                "{e}"
            );
        }
        let e = parse("name = \"x\"\n[memory]\ncommit_target = \"12.345%\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 2 decimal places"), "{e}");
    }

    #[test]
    fn set_overrides() {
        let p = load(
            "reverse-proxy",
            &[
                "connections.concurrent=5".into(),
                "host.ram=8GiB".into(),
                "sysctl.net.core.somaxconn=1024".into(),
            ],
        )
        .unwrap();
        assert_eq!(p.connections.concurrent, 5);
        assert_eq!(p.host.ram, Some(8 << 30));
        assert!(
            p.sysctl
                .contains(&("net.core.somaxconn".to_string(), "1024".to_string()))
        );
        let e = load("reverse-proxy", &["connections.concurent=5".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--set connections.concurent=5:") && e.contains("unknown field"),
            "{e}"
        );
        let e = load("reverse-proxy", &["headroom=0".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--set headroom=0"), "{e}");
        let e = load("reverse-proxy", &["nonsense".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("FIELD=VALUE"), "{e}");
        let e = load("nope", &[]).unwrap_err().to_string();
        assert!(
            e.contains("unknown profile \"nope\"") && e.contains("reverse-proxy"),
            "{e}"
        );
    }

    /// The fields the parser accepts in `table` ("" for the top level), from serde's own
    /// list in the unknown-field error: a field added to a Raw* type shows up here.
    fn accepted(table: &str) -> Vec<String> {
        let text = if table.is_empty() {
            "name = \"x\"\nzz_unknown = 1\n".to_string()
        } else {
            format!("name = \"x\"\n[{table}]\nzz_unknown = 1\n")
        };
        let e = parse(&text).unwrap_err().to_string();
        let list = e
            .split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("{e}"));
        let list = list.split('\n').next().unwrap();
        let fields: Vec<String> = list
            .split(", ")
            .map(|f| f.trim().trim_matches('`').to_string())
            .filter(|f| !f.is_empty())
            .collect();
        assert!(fields.len() >= 3, "{table}: {fields:?} from {e}");
        fields
    }

    #[test]
    fn every_accepted_field_is_documented() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let top = accepted("");
        assert!(top.contains(&"extends".to_string()), "{top:?}");
        let mut all = Vec::new();
        for t in &top {
            if ["host", "connections", "outbound", "memory", "sysctl"].contains(&t.as_str()) {
                if t != "sysctl" {
                    all.extend(accepted(t).into_iter().map(|f| format!("{t}.{f}")));
                }
            } else {
                all.push(t.clone());
            }
        }
        for want in [
            "connections.defaults_at_most",
            "connections.concurrent",
            "connections.average_memory",
            "outbound.loopback",
        ] {
            assert!(all.iter().any(|f| f == want), "{want} not in {all:?}");
        }
        for field in &all {
            // a row of the reference: field, type and unit, default, meaning
            let row = REFERENCE
                .lines()
                .find(|l| l.starts_with(&format!("| `{field}` |")))
                .unwrap_or_else(|| panic!("docs/profile.md has no row for {field}"));
            assert_eq!(row.matches(" | ").count(), 3, "{row}");
            assert!(row.split(" | ").all(|cell| !cell.trim().is_empty()), "{row}");
            // and the README's profile example shows it
            let key = field.rsplit('.').next().unwrap();
            assert!(
                readme
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{key} = "))),
                "README.md's profile example lacks {field}"
            );
        }
        assert!(REFERENCE.contains("| `sysctl.\"KEY\"` |"));
        // "fit" and "observed" are explained where they are accepted
        for word in ["`\"fit\"`", "`\"observed\"`", "Committed_AS", "2147483584"] {
            assert!(REFERENCE.contains(word), "{word}");
        }
    }

    /// Each field of each built-in profile has a comment saying why that value: the
    /// nearest line above it that is not another field is a comment (fields given
    /// together, like bandwidth and rtt, share one).
    #[test]
    fn every_builtin_field_has_a_comment() {
        for (name, text) in BUILTIN {
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            let is_field =
                |l: &str| !l.is_empty() && !l.starts_with('#') && !l.starts_with('[') && l.contains('=');
            for (i, line) in lines.iter().enumerate().filter(|(_, l)| is_field(l)) {
                let above = lines[..i].iter().rev().find(|l| !is_field(l));
                assert!(
                    above.is_some_and(|l| l.starts_with('#')),
                    "{name}: line {} {line:?} has no comment saying why",
                    i + 1
                );
            }
        }
    }

    #[test]
    fn dangerous_pins_need_allow_key() {
        let p = parse("name = \"x\"\n[sysctl]\n\"kernel/core_pattern\" = \"|/bin/sh -c evil\"\n").unwrap();
        let e = check_pins(&p, &[]).unwrap_err();
        assert!(matches!(e, Error::Input(_)));
        let e = e.to_string();
        assert!(
            e.starts_with(r#"[sysctl] "kernel.core_pattern" = "|/bin/sh -c evil" is refused: "#)
                && e.contains("runs as root")
                && e.ends_with("--allow-key kernel.core_pattern"),
            "{e}"
        );
        check_pins(&p, &["kernel.core_pattern".into()]).unwrap();
        // Either spelling allows it; another key does not.
        check_pins(&p, &["kernel/core_pattern".into()]).unwrap();
        assert!(check_pins(&p, &["kernel.modprobe".into()]).is_err());
        assert!(
            check_pins(&p, &["../x".into()])
                .unwrap_err()
                .to_string()
                .starts_with("--allow-key: ")
        );

        // A core_pattern naming a file is an ordinary setting.
        let p = parse("name = \"x\"\n[sysctl]\n\"kernel.core_pattern\" = \"core.%p\"\n").unwrap();
        check_pins(&p, &[]).unwrap();

        // --set pins are checked too, after the merge; every refused key is listed.
        let p = load(
            "reverse-proxy",
            &[
                "sysctl.vm.drop_caches=3".into(),
                "sysctl.fs.binfmt_misc.status=-1".into(),
            ],
        )
        .unwrap();
        let e = check_pins(&p, &["vm.drop_caches".into()])
            .unwrap_err()
            .to_string();
        assert!(!e.contains("\"vm.drop_caches\""), "{e}");
        assert!(
            e.ends_with("name the key on the command line: --allow-key fs.binfmt_misc.status"),
            "{e}"
        );
        let e = check_pins(&p, &[]).unwrap_err().to_string();
        assert!(
            e.ends_with("name each key on the command line: --allow-key fs.binfmt_misc.status --allow-key vm.drop_caches"),
            "{e}"
        );
        check_pins(&p, &["vm.drop_caches".into(), "fs.binfmt_misc.status".into()]).unwrap();

        // A key that is not a plain word is quoted for the shell.
        assert_eq!(
            shell_word("fs.binfmt_misc.$(reboot)"),
            "'fs.binfmt_misc.$(reboot)'"
        );
        assert_eq!(shell_word("kernel.core_pattern"), "kernel.core_pattern");
    }
}
