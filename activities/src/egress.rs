//! Where `http` tasks and `http` context sources may connect (SSRF guard).
//!
//! By default only public addresses are allowed: loopback, private (RFC 1918, unique local),
//! link-local (cloud metadata endpoints live there), unspecified, multicast and shared/CGNAT
//! ranges are refused, after DNS resolution. The request is then pinned to the address that
//! was checked, so a DNS answer that changes between the check and the connection (rebinding)
//! cannot sneak past. `--allow-private-targets` lifts the rule (development, tests).

use std::net::{IpAddr, SocketAddr};

/// The egress rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Egress {
    /// Allow private, loopback and link-local targets.
    pub allow_private: bool,
}

/// Whether an address is one the guard refuses.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// A client for `url` under the rule: the shared one when private targets are allowed, else a
/// client pinned to the checked public address. `Err` explains a refusal.
pub async fn client_for(
    shared: &reqwest::Client,
    url: &reqwest::Url,
    egress: Egress,
    timeout: std::time::Duration,
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
    if let Some(bad) = addrs.iter().find(|a| is_private(a.ip())) {
        return Err(format!(
            "refusing to call {host} ({}): private, loopback and link-local targets are blocked (worker flag --allow-private-targets)",
            bad.ip()
        ));
    }
    let first = *addrs.first().ok_or_else(|| format!("{host} resolved to no address"))?;
    reqwest::Client::builder().resolve(&host, first).timeout(timeout).build().map_err(|e| e.to_string())
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
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
