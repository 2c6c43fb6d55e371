//! Outbound-host allowlist: which `scheme://host:port` a plugin may reach.
//! Deny by default; entries come from the manifest with `{{ key }}` expanded
//! from the plugin's config. Pure parsing and matching.

use std::fmt;

use url::Url;

use super::manifest::PluginConfig;

/// One permitted origin.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    scheme: String,
    host: HostPattern,
    /// `None` = any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`: any subdomain, not the apex.
    Subdomains(String),
}

/// The compiled allowlist of one plugin version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<Entry>,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("`{0}` is not a valid absolute URL")]
    Invalid(String),
    #[error("`{0}`: only http and https are allowed")]
    Scheme(String),
    #[error("`{0}`: URLs with user-info are refused")]
    UserInfo(String),
    #[error("{0} is not on the plugin's allowlist")]
    NotAllowed(String),
}

impl Allowlist {
    /// Compiles manifest entries, expanding `{{ key }}` from `config`.
    pub fn compile(entries: &[String], config: &PluginConfig) -> Result<Allowlist, String> {
        let mut out = Vec::with_capacity(entries.len());
        for raw in entries {
            let expanded = expand(raw, config)?;
            out.push(parse_entry(&expanded).map_err(|e| format!("allowed_outbound_hosts `{raw}`: {e}"))?);
        }
        Ok(Allowlist { entries: out })
    }

    /// Checks a URL the plugin wants to reach; returns the parsed URL if allowed.
    pub fn check(&self, url: &str) -> Result<Url, Denied> {
        let parsed = Url::parse(url).map_err(|_| Denied::Invalid(url.to_string()))?;
        self.check_url(&parsed)?;
        Ok(parsed)
    }

    /// Checks an already parsed URL (used again for every redirect hop).
    pub fn check_url(&self, url: &Url) -> Result<(), Denied> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(Denied::Scheme(url.to_string()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Denied::UserInfo(redact_userinfo(url)));
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(Denied::Invalid(url.to_string()));
        };
        let host = host.to_ascii_lowercase();
        let allowed = self.entries.iter().any(|e| {
            e.scheme == scheme
                && e.port.is_none_or(|p| p == port)
                && match &e.host {
                    HostPattern::Exact(h) => *h == host,
                    HostPattern::Subdomains(suffix) => {
                        host.len() > suffix.len() + 1
                            && host.ends_with(suffix.as_str())
                            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                    }
                }
        });
        if allowed { Ok(()) } else { Err(Denied::NotAllowed(format!("{scheme}://{host}:{port}"))) }
    }
}

impl Allowlist {
    /// Each entry after expansion, in manifest order.
    fn shown(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|e| {
                let host = match &e.host {
                    HostPattern::Exact(h) => h.clone(),
                    HostPattern::Subdomains(s) => format!("*.{s}"),
                };
                match e.port {
                    Some(p) => format!("{}://{host}:{p}", e.scheme),
                    None => format!("{}://{host}:*", e.scheme),
                }
            })
            .collect()
    }

    /// The allowlist as an operator may see it: an entry whose template
    /// (`templates`, the manifest's entries this list was compiled from)
    /// takes a value from a `secret` config key is shown as its template,
    /// never expanded, so a secret used in a host name does not leak.
    pub fn redacted(&self, templates: &[String], secret: impl Fn(&str) -> bool) -> String {
        let shown = self.shown();
        let parts: Vec<String> = shown
            .into_iter()
            .enumerate()
            .map(|(i, e)| match templates.get(i) {
                Some(t) if template_keys(t).iter().any(|k| secret(k)) => t.clone(),
                _ => e,
            })
            .collect();
        parts.join(", ")
    }
}

impl fmt::Display for Allowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown().join(", "))
    }
}

/// The config keys a template entry names (`{{ key }}`).
fn template_keys(raw: &str) -> Vec<&str> {
    let mut keys = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        keys.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    keys
}

fn expand(raw: &str, config: &PluginConfig) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("allowed_outbound_hosts `{raw}`: unclosed `{{{{`"))?;
        let key = after[..end].trim();
        let value = config
            .get(key)
            .ok_or_else(|| format!("allowed_outbound_hosts `{raw}` uses config key `{key}`, which is not set"))?;
        // The entry is this one placeholder and nothing else.
        let t = raw.trim();
        let whole = t.starts_with("{{") && t.ends_with("}}") && t.matches("{{").count() == 1;
        check_value(raw, key, value, whole)?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A config value may name a place, never widen the list: a value that is
/// the whole entry must be a URL or host without wildcards or user-info; a
/// value inside a template (`https://{{ tenant }}.supplier.com`) must be a
/// plain `host[:port]` — a `/`, `#`, `?`, `@` or `*` there would move the
/// origin elsewhere or make it match more.
fn check_value(raw: &str, key: &str, value: &str, whole: bool) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!("allowed_outbound_hosts `{raw}`: config `{key}` = `{value}` {why}; it may only name a host"))
    };
    if value.contains('*') {
        return refuse("has a wildcard");
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("has spaces or control characters");
    }
    if whole {
        let authority = value.split_once("://").map_or(value, |(_, r)| r);
        let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return refuse("has user-info");
        }
        return Ok(());
    }
    let (host, port) = match value.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (value, None),
    };
    let host_ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    if !host_ok || !port_ok {
        return refuse("is not a plain host[:port]");
    }
    Ok(())
}

fn parse_entry(s: &str) -> Result<Entry, String> {
    let (scheme, rest) = s.split_once("://").ok_or_else(|| "expected scheme://host[:port]".to_string())?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme `{scheme}` is not http or https"));
    }
    // An entry may be a full base URL taken from config: only its origin counts.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("user-info is not allowed".into());
    }
    let (authority, any_port) = match authority.strip_suffix(":*") {
        Some(a) => (a, true),
        None => (authority, false),
    };
    let (authority, subdomains) = match authority.strip_prefix("*.") {
        Some(a) => (a, true),
        None => (authority, false),
    };
    if authority.contains('*') {
        return Err("a wildcard is only allowed as a leading `*.` or as the port `:*`".into());
    }
    // Normalise the way `Url` will (case, IDNA, IPv6 brackets) so matching
    // compares like with like.
    let url = Url::parse(&format!("{scheme}://{authority}/")).map_err(|e| format!("bad host or port: {e}"))?;
    let host = url.host_str().ok_or("missing host")?.to_string();
    let port = if any_port { None } else { url.port_or_known_default() };
    let host = if subdomains { HostPattern::Subdomains(host) } else { HostPattern::Exact(host) };
    Ok(Entry { scheme, host, port })
}

fn redact_userinfo(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    format!("{u} (user-info removed)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Allowlist {
        let mut cfg = PluginConfig::new();
        cfg.insert("base_url".into(), "http://127.0.0.1:8080/api/v1".into());
        let e: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        Allowlist::compile(&e, &cfg).unwrap()
    }

    #[test]
    fn exact_origin_and_default_ports() {
        let a = list(&["https://api.example.com", "{{ base_url }}"]);
        assert!(a.check("https://api.example.com/orders").is_ok());
        assert!(a.check("https://API.example.com:443/x").is_ok());
        assert!(a.check("http://api.example.com/").is_err(), "scheme differs");
        assert!(a.check("https://api.example.com:8443/").is_err(), "port differs");
        assert!(a.check("http://127.0.0.1:8080/orders").is_ok());
        assert!(a.check("http://127.0.0.1:8081/orders").is_err());
        assert!(a.check("http://localhost:8080/").is_err(), "no name aliasing");
    }

    #[test]
    fn userinfo_tricks_are_refused() {
        let a = list(&["http://127.0.0.1:8080"]);
        // Looks like 127.0.0.1:8080 to a careless parser, really goes to evil.com.
        assert!(matches!(a.check("http://127.0.0.1:8080@evil.com/"), Err(Denied::UserInfo(_))));
        assert!(matches!(a.check("http://user:pw@127.0.0.1:8080/"), Err(Denied::UserInfo(_))));
        assert!(a.check("http://evil.com\\@127.0.0.1:8080/").is_err());
        assert!(matches!(a.check("file:///etc/passwd"), Err(Denied::Scheme(_))));
        assert!(matches!(a.check("/relative"), Err(Denied::Invalid(_))));
    }

    #[test]
    fn wildcards() {
        let a = list(&["https://*.example.com", "http://10.0.0.1:*"]);
        assert!(a.check("https://a.example.com/").is_ok());
        assert!(a.check("https://a.b.example.com/").is_ok());
        assert!(a.check("https://example.com/").is_err(), "apex is not a subdomain");
        assert!(a.check("https://evilexample.com/").is_err());
        assert!(a.check("http://10.0.0.1:9999/").is_ok());
    }

    #[test]
    fn config_values_name_a_host_and_never_widen_the_list() {
        let compile = |entry: &str, value: &str| {
            let mut cfg = PluginConfig::new();
            cfg.insert("v".into(), value.into());
            Allowlist::compile(&[entry.to_string()], &cfg)
        };
        let a = compile("https://{{ v }}.supplier.com", "acme").unwrap();
        assert!(a.check("https://acme.supplier.com/x").is_ok());
        assert!(a.check("https://evil.com/").is_err());
        for bad in ["evil.com/", "evil.com#", "evil.com?", "a*", "*", "x@evil.com", "evil.com:*", "a b"] {
            let e = compile("https://{{ v }}.supplier.com", bad).unwrap_err();
            assert!(e.contains("config `v`"), "{bad}: {e}");
        }
        assert!(
            compile("https://{{ v }}", "api.example.com:8443").unwrap().check("https://api.example.com:8443/").is_ok()
        );
        assert!(compile("{{ v }}", "http://127.0.0.1:8080/api/v1").is_ok(), "a whole base URL");
        for bad in ["https://*.example.com", "http://x:*", "http://u:p@x.example", "*"] {
            assert!(compile("{{ v }}", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_entries_are_named() {
        let e = Allowlist::compile(&["ftp://x".into()], &PluginConfig::new()).unwrap_err();
        assert!(e.contains("ftp"), "{e}");
        let e = Allowlist::compile(&["{{ nope }}".into()], &PluginConfig::new()).unwrap_err();
        assert!(e.contains("nope"), "{e}");
    }
}
