//! Where `http` tasks and `http` context sources may connect (SSRF guard).
//!
//! By default only globally reachable addresses are allowed. [`is_private`] refuses what the
//! IANA special-purpose address registries mark as not globally reachable (loopback, private,
//! link-local, where cloud metadata endpoints live, shared/CGNAT, benchmarking,
//! documentation, reserved, unique local, discard-only, local-use NAT64, ...) and multicast;
//! addresses that embed an IPv4 address (IPv4-mapped and -compatible, NAT64 `64:ff9b::/96`,
//! 6to4 `2002::/16`) are judged by the embedded one. The check runs after DNS resolution and
//! the request is then pinned to the address that was checked, so a DNS answer that changes
//! between the check and the connection (rebinding) cannot sneak past.
//!
//! Redirects are followed here, not by reqwest: every hop is checked and pinned like the
//! first (a public server answering `302 Location: http://169.254.169.254/` is refused), at
//! most [`MAX_REDIRECTS`] of them, and credentials are dropped when a hop leaves the origin.
//! `--allow-private-targets` lifts the address rule (development, tests); the hop limit stays.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode, Url};

/// Most redirects one request follows.
pub const MAX_REDIRECTS: usize = 5;

/// The egress rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Egress {
    /// Allow private, loopback and link-local targets.
    pub allow_private: bool,
    /// Addresses allowed although [`is_private`] refuses them: an exception for one known
    /// internal service without lifting the whole rule (and the tests' way to make one local
    /// server count as public while another local address stays private).
    pub allowed: Arc<[IpAddr]>,
}

impl Egress {
    /// Whether a connection to `ip` is allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow_private || self.allowed.contains(&ip) || !is_private(ip)
    }
}

/// IPv4 ranges that are not globally reachable (IANA IPv4 Special-Purpose Address Registry),
/// and multicast.
const V4_REFUSED: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "this network"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "shared address space (CGNAT)"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay anycast"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved (and broadcast)"),
];

/// Globally reachable exceptions inside [`V4_REFUSED`] (`192.0.0.9`, `192.0.0.10`: PCP and
/// TURN anycast).
const V4_GLOBAL: &[Ipv4Addr] = &[Ipv4Addr::new(192, 0, 0, 9), Ipv4Addr::new(192, 0, 0, 10)];

/// IPv6 ranges that are not globally reachable (IANA IPv6 Special-Purpose Address Registry),
/// and multicast. Ranges embedding an IPv4 address are handled in [`is_private`] first.
const V6_REFUSED: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 128, "unspecified"),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1), 128, "loopback"),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, "local-use NAT64"),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, "discard-only"),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23, "IETF protocol assignments (Teredo, benchmarking, ORCHID)"),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, "documentation"),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, "documentation"),
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16, "segment routing"),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "unique local"),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local (deprecated)"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

/// Globally reachable sub-blocks of `2001::/23` (PCP and TURN anycast, AMT, AS112-v6,
/// ORCHIDv2 and DETs).
fn v6_global_exception(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let n = u128::from(ip);
    n == 0x2001_0001_0000_0000_0000_0000_0000_0001
        || n == 0x2001_0001_0000_0000_0000_0000_0000_0002
        || s[..2] == [0x2001, 3]
        || s[..3] == [0x2001, 4, 0x112]
        || (s[0] == 0x2001 && (0x20..=0x3f).contains(&s[1]))
}

fn in_v4(ip: Ipv4Addr, base: Ipv4Addr, len: u8) -> bool {
    let shift = 32 - u32::from(len);
    shift == 32 || (u32::from(ip) >> shift) == (u32::from(base) >> shift)
}

fn in_v6(ip: Ipv6Addr, base: Ipv6Addr, len: u8) -> bool {
    let shift = 128 - u32::from(len);
    shift == 128 || (u128::from(ip) >> shift) == (u128::from(base) >> shift)
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated), NAT64 (`64:ff9b::a.b.c.d`)
/// and 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(last),
        // `::` and `::1` are the unspecified and loopback addresses, not IPv4-compatible ones.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(last),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last),
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// Why the guard refuses `ip`, or `None` when it is globally reachable.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if V4_GLOBAL.contains(&v4) {
                return None;
            }
            V4_REFUSED.iter().find(|(base, len, _)| in_v4(v4, *base, *len)).map(|(_, _, why)| *why)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return refusal(IpAddr::V4(v4));
            }
            if v6_global_exception(v6) {
                return None;
            }
            V6_REFUSED.iter().find(|(base, len, _)| in_v6(v6, *base, *len)).map(|(_, _, why)| *why)
        }
    }
}

/// Whether an address is one the guard refuses.
pub fn is_private(ip: IpAddr) -> bool {
    refusal(ip).is_some()
}

/// The client requests share when the address rule does not apply: it follows no redirects
/// (every hop goes through [`send`]).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// A request to send under the rule.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The method.
    pub method: Method,
    /// Where.
    pub url: Url,
    /// Its headers (secrets already revealed).
    pub headers: HeaderMap,
    /// A JSON body.
    pub body: Option<serde_json::Value>,
    /// Each hop's timeout.
    pub timeout: Duration,
}

/// Why a request was not answered.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The rule refuses a hop, or the redirects are malformed or too many: sending again
    /// cannot help.
    #[error("{0}")]
    Refused(String),
    /// The connection or the exchange failed (retrying may help).
    #[error("{0}")]
    Transport(String),
}

/// A client for `url` under the rule: `shared` when the address needs no pin, else a client
/// pinned to the checked address. `Err` explains a refusal.
async fn client_for(
    shared: &reqwest::Client,
    url: &Url,
    egress: &Egress,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    if egress.allow_private {
        return Ok(shared.clone());
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("{url} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
    };
    if let Some(bad) = addrs.iter().find(|a| !egress.permits(a.ip())) {
        return Err(format!(
            "refusing to call {host} ({}, {}): private, loopback and link-local targets are blocked (worker flag --allow-private-targets)",
            bad.ip(),
            refusal(bad.ip()).unwrap_or("private")
        ));
    }
    let first = *addrs.first().ok_or_else(|| format!("{host} resolved to no address"))?;
    reqwest::Client::builder()
        .resolve(&host, first)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())
}

/// Sends `request`, following up to [`MAX_REDIRECTS`] redirects, each hop checked and pinned
/// like the first. `shared` must follow no redirects ([`http_client`]).
pub async fn send(
    shared: &reqwest::Client,
    egress: &Egress,
    request: Outgoing,
) -> Result<reqwest::Response, EgressError> {
    let Outgoing { mut method, mut url, mut headers, mut body, timeout } = request;
    let first = url.clone();
    for hop in 0..=MAX_REDIRECTS {
        let client = client_for(shared, &url, egress, timeout).await.map_err(|m| {
            EgressError::Refused(if hop == 0 { m } else { format!("redirect {hop} from {first} to {url}: {m}") })
        })?;
        let mut builder = client.request(method.clone(), url.clone()).headers(headers.clone()).timeout(timeout);
        if let Some(body) = &body {
            builder = builder.json(body);
        }
        let response =
            builder.send().await.map_err(|e| EgressError::Transport(format!("request to {url} failed: {e}")))?;
        let status = response.status();
        let location = match response.headers().get(header::LOCATION) {
            Some(location) if is_followed(status) => location.clone(),
            _ => return Ok(response),
        };
        let next = location.to_str().ok().and_then(|l| url.join(l).ok()).ok_or_else(|| {
            EgressError::Refused(format!("{url} answered {status} with an invalid Location {location:?}"))
        })?;
        if hop == MAX_REDIRECTS {
            return Err(EgressError::Refused(format!(
                "{first}: more than {MAX_REDIRECTS} redirects (the last to {next})"
            )));
        }
        if !matches!(next.scheme(), "http" | "https") {
            return Err(EgressError::Refused(format!("{url} redirects to {next}: only http and https are followed")));
        }
        // As browsers do: 303, and 301/302 after a POST, continue as a GET without the body.
        if (status == StatusCode::SEE_OTHER && method != Method::HEAD)
            || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND) && method == Method::POST)
        {
            method = Method::GET;
            body = None;
            headers.remove(header::CONTENT_TYPE);
            headers.remove(header::CONTENT_LENGTH);
        }
        // Credentials were meant for the first origin only.
        if next.origin() != url.origin() {
            for name in [header::AUTHORIZATION, header::COOKIE, header::PROXY_AUTHORIZATION] {
                headers.remove(name);
            }
        }
        url = next;
    }
    unreachable!("the loop returns on its last hop")
}

fn is_followed(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_refused_and_public_ones_not() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "192.88.99.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::1",
            "2002:a9fe:a9fe::1",
            "2002:7f00:1::",
            "2001:db8::1",
            "2001::1",
            "2001:2::1",
            "100::1",
            "3fff::1",
            "5f00::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip} should be refused");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "192.0.0.9",
            "192.0.0.10",
            "198.20.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860:4860::8888",
            "2001:3::1",
            "2001:20::1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip} should be allowed");
        }
    }

    #[test]
    fn refusals_say_which_range() {
        assert_eq!(refusal("169.254.169.254".parse().unwrap()), Some("link-local"));
        assert_eq!(
            refusal("64:ff9b::a9fe:a9fe".parse().unwrap()),
            Some("link-local"),
            "NAT64 is judged by the IPv4 address it embeds"
        );
        assert_eq!(refusal("198.18.0.1".parse().unwrap()), Some("benchmarking"));
    }

    #[test]
    fn an_allowed_address_is_the_only_exception() {
        let egress = Egress { allow_private: false, allowed: Arc::from(vec!["127.0.0.1".parse::<IpAddr>().unwrap()]) };
        assert!(egress.permits("127.0.0.1".parse().unwrap()));
        assert!(!egress.permits("127.0.0.2".parse().unwrap()));
        assert!(Egress { allow_private: true, ..Egress::default() }.permits("10.0.0.1".parse().unwrap()));
    }
}
