//! Where a webhook may send: an absolute `http`/`https` URL without
//! credentials whose host resolves only to public addresses. Loopback,
//! private, link-local, shared (CGNAT), unspecified, broadcast and
//! multicast addresses are refused unless the server runs with
//! `--allow-private-webhook-targets`. The check is made when a webhook is
//! saved and again at every delivery (a name can come to resolve elsewhere),
//! and a delivery connects to the very addresses that were checked.

use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2_048;
/// How long a name may take to resolve.
const RESOLVE_WITHIN: Duration = Duration::from_secs(3);

/// A URL's syntax, checked: what is wrong with it, in words for a client.
pub fn parse(text: &str) -> Result<Url, String> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(text).map_err(|_| "must be an absolute http or https URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an absolute http or https URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    Ok(url)
}

/// The addresses a URL's host resolves to, each allowed; what is wrong
/// otherwise.
pub async fn resolve(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let host = url.host_str().ok_or("must name a host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(RESOLVE_WITHIN, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| format!("host {host} did not resolve within 3 s"))?
            .map_err(|_| format!("host {host} does not resolve"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("host {host} does not resolve"));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(format!(
            "must not point at a private, loopback or link-local address ({})",
            bad.ip()
        ));
    }
    Ok(addrs)
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // Reserved for the future, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local, fc00::/7.
        || (first & 0xfe00) == 0xfc00
        // Link-local, fe80::/10.
        || (first & 0xffc0) == 0xfe80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_without_credentials() {
        assert!(parse("https://hooks.example.com/corral?x=1").is_ok());
        assert!(parse("http://203.0.113.9:8080/").is_ok());
        for bad in [
            "hooks.example.com/x",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "https://example.com/#top",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse(&format!("https://e.com/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn literal_addresses_are_checked_without_a_lookup() {
        let url = parse("http://127.0.0.1:9/hook").unwrap();
        assert!(
            resolve(&url, false)
                .await
                .unwrap_err()
                .contains("127.0.0.1")
        );
        assert_eq!(
            resolve(&url, true).await.unwrap(),
            vec!["127.0.0.1:9".parse().unwrap()]
        );
        let v6 = parse("http://[::1]:9/hook").unwrap();
        assert!(resolve(&v6, false).await.is_err());
    }
}
