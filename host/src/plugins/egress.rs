//! Where plugin traffic may go at the network level, below the allowlist:
//! no plugin connects to a loopback, private, link-local, shared (CGNAT),
//! multicast, reserved or cloud-metadata address unless the operator allows
//! that range (`[runtime] egress_allow_ips`, e.g. `127.0.0.1/32` for local
//! simulators). The allowlist names hosts; this checks the address each
//! connection actually uses — an IP in the URL, or every address a name
//! resolves to, at the moment of connecting — so a name that resolves to
//! the admin API on localhost, or is re-pointed there after the allowlist
//! check (DNS rebinding), is refused.
//!
//! Owns: the address policy and the resolver the plugin HTTP client uses.
//! Calls: the system resolver.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// A connection the policy refuses; surfaces as the plugin's capability denial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target}: {reason}")]
pub struct EgressDenied {
    pub target: String,
    pub reason: String,
}

/// The operator's exceptions to the default denylist.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow: Vec<IpNet>,
}

impl EgressPolicy {
    /// Parses `egress_allow_ips` entries: a CIDR range or a single address.
    pub fn new(allow: &[String]) -> Result<EgressPolicy, String> {
        let allow = allow
            .iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                    format!("egress_allow_ips: `{s}` is neither an IP address nor a CIDR range (e.g. 10.1.0.0/16)")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(EgressPolicy { allow })
    }

    /// Why a plugin may not connect to `ip`, if it may not.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let Some(kind) = special_range(ip) else { return Ok(()) };
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        Err(format!(
            "{ip} is a {kind} address; plugins may not connect there unless [runtime] egress_allow_ips allows it"
        ))
    }
}

/// The kind of non-public range `ip` is in, if any.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address written as IPv6 (mapped, NAT64) is that address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_range(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                return v4_range(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
            }
            v6_range(v6)
        }
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) => "cloud metadata",
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared (100.64.0.0/10)",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol (192.0.0.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(match first {
        _ if ip == Ipv6Addr::LOCALHOST => "loopback",
        _ if ip == Ipv6Addr::UNSPECIFIED => "unspecified",
        // fd00:ec2::254 (a cloud's metadata service) is in here too.
        0xfc00..=0xfdff => "unique local (fc00::/7)",
        0xfe80..=0xfebf => "link-local",
        0xff00..=0xffff => "multicast",
        _ if ip.segments()[..6] == [0, 0, 0, 0, 0, 0] => "IPv4-compatible (::/96)",
        _ => return None,
    })
}

/// The plugin HTTP client's resolver: the system's, with every address the
/// policy refuses removed; a name left with none fails with [`EgressDenied`].
pub struct GuardedResolver {
    pub policy: Arc<EgressPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = Vec::new();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        refused.push(why);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let reason = if refused.is_empty() { "resolves to no address".to_string() } else { refused.join("; ") };
                return Err(Box::new(EgressDenied { target: host, reason }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_ranges_are_denied_by_default() {
        let p = EgressPolicy::default();
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.9.9.9", "loopback"),
            ("10.2.3.4", "private"),
            ("172.20.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "metadata"),
            ("100.100.100.200", "metadata"),
            ("169.254.10.1", "link-local"),
            ("100.64.0.1", "shared"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00:ec2::254", "unique local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "metadata"),
            ("64:ff9b::a00:1", "private"),
            ("::127.0.0.1", "IPv4-compatible"),
        ] {
            let e = p.check(ip(addr)).unwrap_err();
            assert!(e.contains(kind) && e.contains("egress_allow_ips"), "{addr}: {e}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111"] {
            p.check(ip(public)).unwrap_or_else(|e| panic!("{public}: {e}"));
        }
    }

    #[test]
    fn the_operator_allows_ranges_explicitly() {
        let p = EgressPolicy::new(&["127.0.0.1".into(), "10.1.0.0/16".into()]).unwrap();
        p.check(ip("127.0.0.1")).unwrap();
        p.check(ip("10.1.200.3")).unwrap();
        assert!(p.check(ip("127.0.0.2")).is_err());
        assert!(p.check(ip("10.2.0.1")).is_err());
        assert!(p.check(ip("169.254.169.254")).is_err());
        let e = EgressPolicy::new(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(e.contains("`10.0.0.0/33`"), "{e}");
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_connect() {
        use reqwest::dns::Resolve;
        let r = GuardedResolver { policy: Arc::new(EgressPolicy::default()) };
        let e = match r.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        let denied = e.downcast_ref::<EgressDenied>().expect("an EgressDenied");
        assert!(denied.reason.contains("loopback"), "{denied}");
    }
}
