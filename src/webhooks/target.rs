//! Where a webhook may send: an absolute `http`/`https` URL without
//! credentials whose host resolves only to public addresses. Loopback,
//! private, link-local, shared (CGNAT), unspecified, broadcast, multicast
//! and the other special-purpose addresses (documentation, benchmarking,
//! protocol assignments) are refused unless the server runs with
//! `--allow-private-webhook-targets`; an IPv6 address that carries an IPv4
//! one (mapped, compatible, translated, NAT64's well-known prefix, 6to4) is
//! judged by the IPv4 address it reaches. The check is made when a webhook is
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
            "must not point at a private, loopback or link-local address ({}) unless \
             private targets are allowed: `corral serve --allow-private-webhook-targets` \
             (the server delivers), and the same flag on `corral webhook create`",
            bad.ip()
        ));
    }
    Ok(addrs)
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
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
        // IETF protocol assignments, 192.0.0.0/24.
        || (a, b, c) == (192, 0, 0)
        // The 6to4 relay anycast, 192.88.99.0/24.
        || (a, b, c) == (192, 88, 99)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b & 0xfe) == 18)
        // Reserved for the future, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local, fc00::/7.
        || (s[0] & 0xfe00) == 0xfc00
        // Link-local, fe80::/10, and the former site-local, fec0::/10.
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        // NAT64 for local use, 64:ff9b:1::/48.
        || (s[0], s[1], s[2]) == (0x64, 0xff9b, 1)
        // Discard-only, 100::/64.
        || (s[0], s[1], s[2], s[3]) == (0x100, 0, 0, 0)
        // IETF protocol assignments (Teredo, ORCHID, …), 2001::/23.
        || (s[0] == 0x2001 && s[1] < 0x200)
        // Documentation, 2001:db8::/32 and 3fff::/20 (RFC 9637).
        || (s[0], s[1]) == (0x2001, 0xdb8)
        || (s[0] == 0x3fff && s[1] < 0x1000)
        // Segment routing (SRv6) SIDs, 5f00::/16 (RFC 9602).
        || s[0] == 0x5f00
        // The dummy prefix, 100:0:0:1::/64 (RFC 9780).
        || (s[0], s[1], s[2], s[3]) == (0x100, 0, 0, 1))
}

/// The IPv4 address an IPv6 address reaches, in the forms that carry one:
/// IPv4-compatible (`::a.b.c.d`, `::` and `::1` included: both come out
/// unspecified), mapped (`::ffff:a.b.c.d`), translated
/// (`::ffff:0:a.b.c.d`), NAT64's well-known prefix (`64:ff9b::a.b.c.d`) and
/// 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0, hi, lo]
        | [0, 0, 0, 0, 0, 0xffff, hi, lo]
        | [0, 0, 0, 0, 0xffff, 0, hi, lo]
        | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
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
            // IPv4 carried inside IPv6: NAT64, 6to4, compatible, translated.
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
            "::ffff:0:7f00:1",
            "64:ff9b:1::1",
            // Special-purpose ranges.
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.1",
            "192.88.99.1",
            "2001:db8::1",
            "2001::1",
            "100::1",
            "fec0::1",
            "3fff::1",
            "3fff:fff:ffff::1",
            "5f00::1",
            "5f00:ffff:1::1",
            "100:0:0:1::1",
            "100::1:ffff:ffff:ffff:ffff",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "100.128.0.1",
            "198.20.0.1",
            "192.0.1.1",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860:4860::8888",
            // Just past the ranges above: 3fff::/20, 5f00::/16, 100:0:0:1::/64.
            "3fff:1000::1",
            "5f01::1",
            "100:0:0:2::1",
        ] {
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
