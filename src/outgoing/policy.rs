//! An entry's `http_client:` policy: the config as written, its validation, which hosts it
//! lets a guest reach and which addresses count as private.

use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;

/// `http_client.timeout_ms` when not set: 10 s per request.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// `http_client.max_response_bytes` when not set: 16 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 << 20;
/// `http_client.max_request_bytes` when not set: 16 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 16 << 20;

/// `http_client:`. Every field has a default; without `allowed_hosts` nothing is allowed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpClientConfig {
    /// `name`, `name:port`, `*.name` (`*` is one label), an IP literal (`[::1]:8080`).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Loopback, private, link-local, unspecified and other non-public addresses; default false.
    #[serde(default)]
    pub allow_private_ip: bool,
    /// Per request, response body included; default [`DEFAULT_TIMEOUT_MS`]. Never beyond the
    /// call's own deadline.
    pub timeout_ms: Option<i64>,
    /// Default [`DEFAULT_MAX_RESPONSE_BYTES`].
    pub max_response_bytes: Option<i64>,
    /// Default [`DEFAULT_MAX_REQUEST_BYTES`].
    pub max_request_bytes: Option<i64>,
}

impl HttpClientConfig {
    /// Problems of this config as `(field path, message)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (i, host) in self.allowed_hosts.iter().enumerate() {
            if let Err(e) = HostPattern::parse(host) {
                let field = format!("http_client.allowed_hosts[{}]", i + 1);
                problems.push((field.clone(), format!("{field}: {e}")));
            }
        }
        for (field, value) in [
            ("timeout_ms", self.timeout_ms),
            ("max_response_bytes", self.max_response_bytes),
            ("max_request_bytes", self.max_request_bytes),
        ] {
            if value.is_some_and(|v| v <= 0) {
                problems.push((
                    format!("http_client.{field}"),
                    format!("http_client.{field} must be positive"),
                ));
            }
        }
        problems
    }
}

/// A validated `http_client:`, or the default that denies every request.
#[derive(Debug, Clone)]
pub struct Policy {
    pub allowed_hosts: Vec<HostPattern>,
    pub allow_private_ip: bool,
    pub timeout_ms: u64,
    pub max_response_bytes: u64,
    pub max_request_bytes: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allowed_hosts: Vec::new(),
            allow_private_ip: false,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

impl Policy {
    /// From a config [`HttpClientConfig::validate`] found nothing wrong with.
    pub fn from_config(config: &HttpClientConfig) -> Policy {
        let positive =
            |v: Option<i64>, default: u64| v.filter(|v| *v > 0).map_or(default, |v| v as u64);
        Policy {
            allowed_hosts: config
                .allowed_hosts
                .iter()
                .filter_map(|h| HostPattern::parse(h).ok())
                .collect(),
            allow_private_ip: config.allow_private_ip,
            timeout_ms: positive(config.timeout_ms, DEFAULT_TIMEOUT_MS)
                .min(crate::limits::MAX_TIMEOUT_MS),
            max_response_bytes: positive(config.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES),
            max_request_bytes: positive(config.max_request_bytes, DEFAULT_MAX_REQUEST_BYTES),
        }
    }

    /// Whether a request to `host` (as in the URI: lowercase or not, IPv6 in brackets) on
    /// `port` is allowed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = Host::parse(host);
        self.allowed_hosts.iter().any(|p| p.matches(&host, port))
    }
}

/// One `allowed_hosts` item.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPattern {
    host: Host,
    port: Option<u16>,
}

/// A host as a pattern holds it or a request names it.
#[derive(Debug, Clone, PartialEq)]
enum Host {
    Ip(IpAddr),
    /// Lowercase labels, no trailing dot; in a pattern a label may be `*`.
    Name(Vec<String>),
}

impl Host {
    fn parse(host: &str) -> Host {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(
                host.strip_suffix('.')
                    .unwrap_or(host)
                    .split('.')
                    .map(str::to_ascii_lowercase)
                    .collect(),
            ),
        }
    }
}

impl HostPattern {
    /// # Errors
    /// A message naming what is wrong with `text`.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let bad = |why: &str| {
            Err(format!(
                "`{text}` is not a host ({why}); write `name`, `name:port`, `*.name` or an IP address"
            ))
        };
        if text.contains("://") || text.contains('/') {
            return bad("no scheme or path");
        }
        // `[v6]`, `[v6]:port`, `v4`, `v4:port`, `name`, `name:port`.
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            match rest.split_once(']') {
                Some((ip, "")) => (ip, None),
                Some((ip, port)) => match port.strip_prefix(':') {
                    Some(port) => (ip, Some(port)),
                    None => return bad("junk after `]`"),
                },
                None => return bad("no `]`"),
            }
        } else if text.matches(':').count() > 1 {
            return bad("an IPv6 address goes in brackets");
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
                _ => return bad("a port is 1 to 65535"),
            },
        };
        let labels = match (Host::parse(host), text.starts_with('[')) {
            (host @ Host::Ip(IpAddr::V6(_)), true) | (host @ Host::Ip(IpAddr::V4(_)), false) => {
                return Ok(HostPattern { host, port });
            }
            (_, true) => return bad("not an IPv6 address"),
            (Host::Ip(_), false) => return bad("an IPv6 address goes in brackets"),
            (Host::Name(labels), false) => labels,
        };
        for label in &labels {
            let ok = label == "*"
                || (!label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            if !ok {
                return bad("labels are letters, digits, `-` and `_`, or `*` for one label");
            }
        }
        if labels.iter().all(|l| l == "*") {
            return bad("a pattern needs at least one label that is not `*`");
        }
        // `010.0.0.1`, `1.2.3`, `0x7f.1`: resolvers read them as addresses (octal, short
        // forms), not as the names they look like.
        let last = labels.last().map_or("", String::as_str);
        if last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x") {
            return bad("an IP address is written in full, `1.2.3.4` or `[::1]`");
        }
        Ok(HostPattern {
            host: Host::Name(labels),
            port,
        })
    }

    fn matches(&self, host: &Host, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match (&self.host, host) {
            (Host::Ip(a), Host::Ip(b)) => a == b,
            (Host::Name(pattern), Host::Name(name)) => {
                pattern.len() == name.len()
                    && pattern
                        .iter()
                        .zip(name)
                        .all(|(p, n)| (p == "*" && !n.is_empty()) || p == n)
            }
            _ => false,
        }
    }
}

/// As written in a registry, normalised: lowercase, no trailing dot, IPv6 in brackets.
impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            Host::Ip(ip) => write!(f, "{ip}")?,
            Host::Name(labels) => write!(f, "{}", labels.join("."))?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Whether `ip` is anything but a public unicast address: loopback, private, shared (CGNAT),
/// link-local, unspecified, broadcast, multicast, reserved, documentation and benchmarking
/// ranges, and IPv6 forms that carry such an IPv4 address (mapped, compatible, NAT64, 6to4)
/// or an address of their own kind (unique local, site-local, Teredo).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let embedded = |hi: u16, lo: u16| {
                Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            // ::ffff:0:a.b.c.d (IPv4-translated).
            if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
                return private_v4(embedded(s[6], s[7]));
            }
            // ::a.b.c.d (deprecated IPv4-compatible), and :: and ::1 themselves.
            if s[..6] == [0; 6] {
                return true;
            }
            // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48).
            if s[0] == 0x64 && s[1] == 0xff9b {
                return s[2] != 0 || private_v4(embedded(s[6], s[7]));
            }
            // 6to4: 2002:a.b.c.d::/48.
            if s[0] == 0x2002 {
                return private_v4(embedded(s[1], s[2]));
            }
            v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local
                || (s[0] == 0x2001 && s[1] == 0) // Teredo
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0100 && s[1..4] == [0; 3]) // discard-only
                || (s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0) // benchmarking
                || (s[0] & 0xfff0) == 0x3ff0 // documentation (3fff::/20)
                || s[0] == 0x5f00 // segment routing
        }
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0 // "this network"
        || a >= 240 // reserved
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str]) -> Policy {
        Policy::from_config(&HttpClientConfig {
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..Default::default()
        })
    }

    #[test]
    fn hosts_match_by_name_label_and_port() {
        let p = policy(&[
            "api.example.com",
            "*.example.org:443",
            "127.0.0.1:8080",
            "[::1]:9",
        ]);
        assert!(p.allows("api.example.com", 80));
        assert!(p.allows("API.Example.COM.", 8443));
        assert!(!p.allows("example.com", 80));
        assert!(!p.allows("x.api.example.com", 80));
        assert!(p.allows("a.example.org", 443));
        assert!(!p.allows("a.example.org", 80));
        assert!(!p.allows("example.org", 443));
        assert!(!p.allows("a.b.example.org", 443));
        assert!(p.allows("127.0.0.1", 8080));
        assert!(!p.allows("127.0.0.1", 8081));
        assert!(!p.allows("localhost", 8080));
        assert!(p.allows("[::1]", 9));
        assert!(!p.allows("[::2]", 9));
        assert!(!policy(&[]).allows("api.example.com", 80));
        let shown: Vec<_> = p.allowed_hosts.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "api.example.com",
                "*.example.org:443",
                "127.0.0.1:8080",
                "[::1]:9"
            ]
        );
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        for bad in [
            "https://api.example.com",
            "api.example.com/x",
            "api.example.com:0",
            "api.example.com:99999",
            "api.example.com:",
            "::1",
            "[::1",
            "[nope]:80",
            "*",
            "*.*",
            "a..b",
            "",
            "sp ace.com",
            "010.0.0.1",
            "1.2.3",
            "0x7f.1",
            "2130706433",
        ] {
            let e = HostPattern::parse(bad).expect_err(bad);
            assert!(e.starts_with(&format!("`{bad}` is not a host (")), "{e}");
        }
    }

    #[test]
    fn private_addresses_are_every_non_public_kind() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001::1",
            "2001:db8::1",
            "::ffff:0:7f00:1",
            "2001:2::1",
            "3fff::1",
            "5f00::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
