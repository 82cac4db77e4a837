//! Ports for the servers this project starts (Postgres, the Temporal dev server, `taskfactory
//! api`/`worker` processes in tests).
//!
//! Why not "bind port 0, read the port, release it, hand it to the server": every listener
//! bound to port 0 — and the Temporal dev server, which picks random free ports for its
//! internal services and for `--metrics-port`/`--http-port` when they are not given — draws
//! from the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`). A port taken
//! from that range and released can be drawn again by one of them before the server it was
//! meant for binds it. That happened: Postgres lost its port to a starting dev server.
//!
//! So server ports come from *outside* the ephemeral range, where no port-0 bind ever lands;
//! each is checked free by binding it, and this process never hands one out twice. What can
//! still take such a port is an unrelated process binding that exact port; a server start
//! that loses its port that way fails with [`PortInUse`], and the callers that chose the port
//! ([`super::TemporalDevServer::spawn_retrying`], [`super::PostgresCluster::spawn_on_free_port`])
//! draw a new one and start again.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::ops::RangeInclusive;
use std::sync::Mutex;

use anyhow::bail;

/// A server could not bind its port (another process has it).
#[derive(Debug, thiserror::Error)]
#[error("{what} could not bind port {port}: address already in use")]
pub struct PortInUse {
    /// Which server.
    pub what: String,
    /// The port it was given.
    pub port: u16,
}

/// Whether a server's log says it lost a port to another process.
pub(super) fn log_says_port_in_use(log: &str) -> bool {
    let log = log.to_ascii_lowercase();
    log.contains("address already in use") || log.contains("could not bind")
}

/// Ports this process handed out (never twice).
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The lowest port we use: below it live well-known services (and 7233/8233/8080, the ports
/// `taskfactory dev` binds by default).
const LOWEST: u16 = 10_000;

/// The kernel's ephemeral port range (Linux default when it cannot be read).
fn ephemeral_range() -> RangeInclusive<u16> {
    let parsed = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok().and_then(|text| {
        let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
        Some(parts.next()??..=parts.next()??)
    });
    parsed.unwrap_or(32_768..=60_999)
}

/// The ranges server ports are drawn from: below and above the ephemeral range. When the
/// ephemeral range covers everything (some containers set 1024-65535), all of it, and the
/// retry on [`PortInUse`] is what remains.
fn server_ranges() -> Vec<RangeInclusive<u16>> {
    let ephemeral = ephemeral_range();
    let mut ranges = Vec::new();
    if *ephemeral.start() > LOWEST + 1_000 {
        ranges.push(LOWEST..=ephemeral.start() - 1);
    }
    if *ephemeral.end() < 65_535 - 1_000 {
        ranges.push(ephemeral.end() + 1..=65_535);
    }
    if ranges.is_empty() {
        ranges.push(LOWEST..=65_535);
    }
    ranges
}

/// A random number, without a dependency: std's randomly keyed hasher.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0),
    );
    hasher.finish()
}

/// A free port on 127.0.0.1 for a server that binds it later: outside the kernel's ephemeral
/// range (see the module docs), free right now, and never returned twice by this process.
pub fn server_port() -> anyhow::Result<u16> {
    let ranges = server_ranges();
    let total: u64 = ranges.iter().map(|r| u64::from(r.end() - r.start()) + 1).sum();
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..200 {
        let mut n = random_u64() % total;
        let mut port = None;
        for range in &ranges {
            let len = u64::from(range.end() - range.start()) + 1;
            if n < len {
                port = u16::try_from(u64::from(*range.start()) + n).ok();
                break;
            }
            n -= len;
        }
        let Some(port) = port else { continue };
        if handed_out.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        handed_out.insert(port);
        return Ok(port);
    }
    bail!("found no free port outside the ephemeral range {:?} after 200 tries", ephemeral_range())
}

/// How many times a server whose chosen port was taken is started again on a new one.
pub const START_ATTEMPTS: usize = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ports_are_outside_the_ephemeral_range_and_never_repeat() {
        let (ephemeral, ranges) = (ephemeral_range(), server_ranges());
        let ranges_avoid_ephemeral = !ranges.iter().any(|r| r.contains(ephemeral.start()));
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let port = server_port().expect("a port");
            assert!(ranges.iter().any(|r| r.contains(&port)), "{port} is outside {ranges:?}");
            if ranges_avoid_ephemeral {
                assert!(!ephemeral.contains(&port), "{port} is in the ephemeral range {ephemeral:?}");
            }
            assert!(seen.insert(port), "{port} handed out twice");
        }
    }

    #[test]
    fn a_port_in_use_is_recognised_in_both_servers_logs() {
        assert!(log_says_port_in_use("LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use"));
        assert!(log_says_port_in_use(
            "Error: failed to start: listen tcp 127.0.0.1:23456: bind: address already in use"
        ));
        assert!(!log_says_port_in_use("database system is ready to accept connections"));
    }
}
