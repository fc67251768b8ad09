//! Which names the CA signs under a template: DNS names, IP addresses and URIs by the
//! template's rules (`dns_names`, `ip_addresses`, `uri_patterns`, `allow_wildcards`); never a
//! wildcard over a public suffix or a bare `*`; never a name of this server (its TLS
//! certificate's names, its CA certificates' subjects).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::OnceLock;

use super::rules::PolicyError;
use crate::est::SanEntry;

/// One `dns_names` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsRule {
    /// `*.branch.example.com`: any name below `branch.example.com`, at any depth.
    Below(String),
    /// `%cn%.devices.example.com`, `printer.example.com`: exactly this name, `%cn%` standing
    /// for the request's CN.
    Exact(String),
}

/// One `ip_addresses` rule: an address or a network (`10.20.0.0/16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    net: IpAddr,
    prefix: u8,
}

/// One `uri_patterns` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriRule {
    /// `urn:dev:serial:%cn%`: exactly this URI.
    Exact(String),
    /// `spiffe://example.org/devices/*`: any URI starting so.
    Prefix(String),
}

/// A template's name rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameRules {
    pub dns: Vec<DnsRule>,
    pub ips: Vec<IpRange>,
    pub uris: Vec<UriRule>,
    pub upns: Vec<MailRule>,
    pub emails: Vec<MailRule>,
    /// A DNS name may be a wildcard (`*.branch.example.com`), within the rules.
    pub allow_wildcards: bool,
}

/// The names of this server, never issued to anyone: its TLS certificate's DNS names and
/// IP addresses (and CN), and the subjects of its CA certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReservedNames {
    /// Lower case, without a trailing dot.
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    /// Each CA certificate's subject, as compared: its attributes' types and values (lower
    /// case), whatever string types encode them.
    pub subjects: Vec<Vec<(String, String)>>,
}

/// A DNS name as compared: lower case, without a trailing dot.
pub fn normalize_dns(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The labels of a rule or name: each a DNS label, or holding `%cn%` (rules only).
fn valid_pattern_labels(s: &str, allow_cn: bool) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            if allow_cn && l.contains("%cn%") {
                valid_label(&l.replace("%cn%", "x"))
            } else {
                valid_label(l)
            }
        })
}

impl DnsRule {
    pub fn parse(rule: &str) -> Result<Self, String> {
        let r = normalize_dns(rule.trim());
        if r == "*" {
            return Err(format!("{rule:?}: a bare * would allow every name"));
        }
        if let Some(base) = r.strip_prefix("*.") {
            if !valid_pattern_labels(base, true) {
                return Err(format!(
                    "{rule:?}: after \"*.\" comes a domain, such as \"*.devices.example.com\""
                ));
            }
            check_fixed_domain(rule, base)?;
            return Ok(Self::Below(base.to_string()));
        }
        if r.contains('*') {
            return Err(format!(
                "{rule:?}: '*' only as the whole first label, as in \"*.devices.example.com\""
            ));
        }
        if !valid_pattern_labels(&r, true) {
            return Err(format!(
                "{rule:?} is not a DNS name or a pattern such as \"%cn%.devices.example.com\""
            ));
        }
        if r.contains("%cn%") {
            check_fixed_domain(rule, &r)?;
        }
        Ok(Self::Exact(r))
    }

    fn allows(&self, name: &str, cn: Option<&str>) -> bool {
        let fill = |p: &str| -> Option<String> {
            if p.contains("%cn%") {
                cn.map(|c| p.replace("%cn%", &normalize_dns(c)))
            } else {
                Some(p.to_string())
            }
        };
        match self {
            Self::Below(base) => fill(base).is_some_and(|b| {
                name.len() > b.len() + 1
                    && name.ends_with(&b)
                    && name.as_bytes()[name.len() - b.len() - 1] == b'.'
            }),
            Self::Exact(p) => fill(p).is_some_and(|p| p == name),
        }
    }
}

/// A rule that names must fall under (`*.x`, or a `%cn%` pattern) ends in a domain of the
/// operator's own: at least two labels after the last `%cn%`, not a public suffix. So the
/// requester's CN never chooses the domain (`%cn%` alone would let a CN of `bank.com` be
/// issued), and `*.co.uk` never passes.
fn check_fixed_domain(rule: &str, pattern: &str) -> Result<(), String> {
    let fixed = match pattern.rfind("%cn%") {
        Some(at) => pattern[at + 4..].strip_prefix('.').unwrap_or(""),
        None => pattern,
    };
    if fixed.is_empty() || fixed.contains("%cn%") || !fixed.contains('.') {
        return Err(format!(
            "{rule:?} lets the request choose the domain: end it with a domain of yours, as in \"%cn%.devices.example.com\""
        ));
    }
    if is_public_suffix(fixed) {
        return Err(format!(
            "{rule:?} covers the public suffix {fixed:?}: name a domain of your own"
        ));
    }
    Ok(())
}

impl std::fmt::Display for DnsRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Below(b) => write!(f, "*.{b}"),
            Self::Exact(p) => f.write_str(p),
        }
    }
}

impl IpRange {
    pub fn parse(rule: &str) -> Result<Self, String> {
        let bad = || format!("{rule:?} is not an IP address or network such as \"10.20.0.0/16\"");
        let (addr, prefix) = match rule.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (rule.trim(), None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        if prefix == 0 {
            return Err(format!("{rule:?} would allow every address"));
        }
        Ok(Self { net, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> u128 {
            match ip {
                IpAddr::V4(v4) => u128::from(u32::from(v4)),
                IpAddr::V6(v6) => u128::from(v6),
            }
        };
        if self.net.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let shift = width - u32::from(self.prefix);
        let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
        bits(self.net) & mask == bits(ip) & mask
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl UriRule {
    pub fn parse(rule: &str) -> Result<Self, String> {
        let r = rule.trim();
        if r.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("{rule:?}: no spaces or control characters"));
        }
        let (text, prefix) = match r.strip_suffix('*') {
            Some(t) => (t, true),
            None => (r, false),
        };
        if text.contains('*') {
            return Err(format!("{rule:?}: '*' only at the end (a prefix)"));
        }
        if !text.contains(':') || text.starts_with(':') {
            return Err(format!(
                "{rule:?} does not start with a scheme, as in \"urn:dev:serial:%cn%\" or \"spiffe://example.org/*\""
            ));
        }
        if prefix && !(text.ends_with('/') || text.ends_with(':')) {
            return Err(format!(
                "{rule:?}: a prefix ends with '/' or ':' (\"https://example.org*\" would allow https://example.org.evil.net)"
            ));
        }
        Ok(if prefix {
            Self::Prefix(text.to_string())
        } else {
            Self::Exact(text.to_string())
        })
    }

    fn allows(&self, uri: &str, cn: Option<&str>) -> bool {
        let fill = |p: &str| -> Option<String> {
            if p.contains("%cn%") {
                // a CN goes into a URI only as one plain segment
                cn.filter(|c| safe_uri_path(c) && !c.contains('/'))
                    .map(|c| p.replace("%cn%", c))
            } else {
                Some(p.to_string())
            }
        };
        match self {
            Self::Exact(p) => fill(p).is_some_and(|p| p == uri),
            // below the prefix: plain path segments only (no "..", no escapes, no "@", "?")
            Self::Prefix(p) => fill(p).is_some_and(|p| {
                uri.strip_prefix(p.as_str())
                    .is_some_and(|rest| !rest.is_empty() && safe_uri_path(rest))
            }),
        }
    }
}

/// Unreserved characters and `/` only (RFC 3986), and no `.` or `..` segment.
fn safe_uri_path(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b':'))
        && s.split('/').all(|seg| seg != "." && seg != "..")
}

/// One `upn_names` or `email_names` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailRule {
    /// `%cn%@corp.example.com`, `svc@example.com`: exactly this (regardless of case).
    Exact(String),
    /// `*@corp.example.com`: any name at this domain.
    AnyAt(String),
    /// `*`: any at all (a template for trusted connectors, which name their users).
    Any,
}

impl MailRule {
    pub fn parse(rule: &str) -> Result<Self, String> {
        let r = rule.trim().to_ascii_lowercase();
        if r == "*" {
            return Ok(Self::Any);
        }
        let Some((local, domain)) = r.split_once('@') else {
            return Err(format!(
                "{rule:?} is not user@domain, \"%cn%@corp.example.com\", \"*@corp.example.com\" or \"*\""
            ));
        };
        let domain_ok = |d: &str| valid_pattern_labels(d, false) && d.contains('.');
        if !domain_ok(domain) || local.is_empty() || local.contains('@') {
            return Err(format!(
                "{rule:?} is not user@domain, \"%cn%@corp.example.com\", \"*@corp.example.com\" or \"*\""
            ));
        }
        if local == "*" {
            return Ok(Self::AnyAt(domain.to_string()));
        }
        if local.contains('*') || local.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("{rule:?}: '*' only as the whole user part"));
        }
        Ok(Self::Exact(r))
    }

    fn allows(&self, value: &str, cn: Option<&str>) -> bool {
        let v = value.to_ascii_lowercase();
        match self {
            Self::Any => true,
            Self::AnyAt(domain) => v
                .rsplit_once('@')
                .is_some_and(|(local, d)| !local.is_empty() && d == domain),
            Self::Exact(p) if p.contains("%cn%") => {
                cn.is_some_and(|c| p.replace("%cn%", &c.to_ascii_lowercase()) == v)
            }
            Self::Exact(p) => *p == v,
        }
    }
}

impl std::fmt::Display for MailRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(p) => f.write_str(p),
            Self::AnyAt(d) => write!(f, "*@{d}"),
            Self::Any => f.write_str("*"),
        }
    }
}

impl std::fmt::Display for UriRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(p) => f.write_str(p),
            Self::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

impl NameRules {
    /// The rules as the operator wrote them, for the messages of refusals.
    pub fn describe_dns(&self) -> String {
        describe(&self.dns)
    }
    pub fn describe_ips(&self) -> String {
        describe(&self.ips)
    }
    pub fn describe_uris(&self) -> String {
        describe(&self.uris)
    }
    pub fn describe_upns(&self) -> String {
        describe(&self.upns)
    }
    pub fn describe_emails(&self) -> String {
        describe(&self.emails)
    }

    /// Is this DNS name (lower case) allowed by a rule (wildcards aside)?
    pub fn allows_dns(&self, name: &str, cn: Option<&str>) -> bool {
        self.dns.iter().any(|r| r.allows(name, cn))
    }

    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.ips.iter().any(|r| r.contains(ip))
    }

    /// Is this email address allowed by an `email_names` rule?
    pub fn allows_email(&self, value: &str, cn: Option<&str>) -> bool {
        self.emails.iter().any(|r| r.allows(value, cn))
    }

    /// Every DNS name, IP address and URI of the certificate must be allowed by a rule, save
    /// those `exempt` says the template built itself from checked input (a MAC address).
    pub fn check(
        &self,
        template: &str,
        san: &[SanEntry],
        cn: Option<&str>,
        exempt: impl Fn(&SanEntry) -> bool,
    ) -> Result<(), PolicyError> {
        let refuse = |e: &SanEntry, allowed: String| PolicyError::NameNotAllowed {
            template: template.to_string(),
            entry: e.to_string(),
            allowed,
        };
        for e in san {
            if exempt(e) {
                continue;
            }
            match e {
                SanEntry::Dns(raw) => {
                    let name = normalize_dns(raw);
                    if name.contains('*') {
                        if !self.allow_wildcards {
                            return Err(PolicyError::WildcardNotAllowed {
                                template: template.to_string(),
                                entry: e.to_string(),
                            });
                        }
                        check_wildcard(&name, e)?;
                    }
                    if !self.dns.iter().any(|r| r.allows(&name, cn)) {
                        return Err(refuse(e, self.describe_dns()));
                    }
                }
                SanEntry::Ip(ip) => {
                    if !self.allows_ip(*ip) {
                        return Err(refuse(e, self.describe_ips()));
                    }
                }
                SanEntry::Uri(uri) => {
                    if !self.uris.iter().any(|r| r.allows(uri, cn)) {
                        return Err(refuse(e, self.describe_uris()));
                    }
                }
                SanEntry::Email(v) => {
                    if !self.allows_email(v, cn) {
                        return Err(refuse(e, self.describe_emails()));
                    }
                }
                SanEntry::OtherName(oid, v) if oid == super::san::UPN_OID => {
                    if !self.upns.iter().any(|r| r.allows(v, cn)) {
                        return Err(refuse(e, self.describe_upns()));
                    }
                }
                SanEntry::OtherName(..) | SanEntry::Other(_) => {}
            }
        }
        Ok(())
    }
}

fn describe<T: std::fmt::Display>(rules: &[T]) -> String {
    if rules.is_empty() {
        "none".into()
    } else {
        rules
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A wildcard is the whole first label over a domain of at least two labels that is not a
/// public suffix: `*.branch.example.com`, never `*`, `*.com`, `*.co.uk`, `a*.example.com`.
fn check_wildcard(name: &str, e: &SanEntry) -> Result<(), PolicyError> {
    let too_broad = |suffix: &str| PolicyError::WildcardTooBroad {
        entry: e.to_string(),
        suffix: suffix.to_string(),
    };
    let Some(base) = name.strip_prefix("*.") else {
        return Err(too_broad(name));
    };
    if base.contains('*') || !valid_pattern_labels(base, false) {
        return Err(too_broad(name));
    }
    if is_public_suffix(base) {
        return Err(too_broad(base));
    }
    Ok(())
}

impl ReservedNames {
    /// From the TLS server certificate (DER) and the CA chain (DER, issuing CA first).
    pub fn from_certificates(tls_leaf: Option<&[u8]>, ca_chain: &[Vec<u8>]) -> Self {
        let mut out = Self::default();
        if let Some(leaf) = tls_leaf
            && let Ok((subject, sans)) = crate::est::cert_identity(leaf)
        {
            for e in sans {
                match e {
                    SanEntry::Dns(d) => out.dns.push(normalize_dns(&d)),
                    SanEntry::Ip(ip) => out.ips.push(ip.to_canonical()),
                    _ => {}
                }
            }
            if let Ok(name) = <x509_cert::name::Name as der::Decode>::from_der(&subject)
                && let Some(cn) = crate::est::common_name(&name)
            {
                match cn.parse::<IpAddr>() {
                    Ok(ip) => out.ips.push(ip.to_canonical()),
                    Err(_) => out.dns.push(normalize_dns(&cn)),
                }
            }
        }
        for ca in ca_chain {
            if let Ok((subject, _)) = crate::est::cert_identity(ca)
                && let Ok(name) = <x509_cert::name::Name as der::Decode>::from_der(&subject)
            {
                out.subjects.push(comparable(&name));
            }
        }
        out.dns.sort();
        out.dns.dedup();
        out.ips.sort();
        out.ips.dedup();
        out
    }

    /// Refuses a subject, CN or SAN entry that is a name of this server (or a wildcard that
    /// covers one).
    pub fn check(
        &self,
        subject: &x509_cert::name::Name,
        cn: Option<&str>,
        san: &[SanEntry],
    ) -> Result<(), PolicyError> {
        let refuse = |what: String| PolicyError::ServerName { entry: what };
        if !self.subjects.is_empty() && self.subjects.contains(&comparable(subject)) {
            return Err(refuse(subject.to_string()));
        }
        if let Some(cn) = cn {
            let as_dns = normalize_dns(cn);
            if self.covers(&as_dns)
                || cn
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| self.ips.contains(&ip.to_canonical()))
            {
                return Err(refuse(format!("CN={cn}")));
            }
        }
        for e in san {
            match e {
                SanEntry::Dns(d) if self.covers(&normalize_dns(d)) => {
                    return Err(refuse(e.to_string()));
                }
                SanEntry::Ip(ip) if self.ips.contains(&ip.to_canonical()) => {
                    return Err(refuse(e.to_string()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `name` is one of this server's DNS names, or a wildcard one of them matches
    /// (`*.example.com` covers `est.example.com`).
    fn covers(&self, name: &str) -> bool {
        if self.dns.iter().any(|d| d == name) {
            return true;
        }
        match name.strip_prefix("*.") {
            Some(base) => self
                .dns
                .iter()
                .any(|d| d.split_once('.').is_some_and(|(_, rest)| rest == base)),
            None => false,
        }
    }
}

/// A name as compared with the CA's: each attribute's OID and its text in lower case.
fn comparable(name: &x509_cert::name::Name) -> Vec<(String, String)> {
    name.iter()
        .map(|atv| {
            (
                atv.oid.to_string(),
                crate::est::directory_string(&atv.value).to_lowercase(),
            )
        })
        .collect()
}

/// The Public Suffix List (ASCII rules), parsed once.
struct Suffixes {
    exact: HashSet<&'static str>,
    /// `*.ck` is stored as `ck`.
    wildcard: HashSet<&'static str>,
    /// `!www.ck` is stored as `www.ck`.
    exception: HashSet<&'static str>,
}

static LIST: &str = include_str!("public_suffix_list.dat");

fn suffixes() -> &'static Suffixes {
    static PARSED: OnceLock<Suffixes> = OnceLock::new();
    PARSED.get_or_init(|| {
        let mut s = Suffixes {
            exact: HashSet::new(),
            wildcard: HashSet::new(),
            exception: HashSet::new(),
        };
        for line in LIST.lines() {
            let rule = line.trim();
            if rule.is_empty() || rule.starts_with("//") {
                continue;
            }
            if let Some(r) = rule.strip_prefix('!') {
                s.exception.insert(r);
            } else if let Some(r) = rule.strip_prefix("*.") {
                s.wildcard.insert(r);
            } else {
                s.exact.insert(rule);
            }
        }
        s
    })
}

/// Is `domain` (lower case, no trailing dot) a public suffix (`com`, `co.uk`, `github.io`),
/// under which anyone may register names? Every single-label name counts as one (the list's
/// implicit `*` rule).
pub fn is_public_suffix(domain: &str) -> bool {
    let d = domain.trim_end_matches('.');
    if !d.contains('.') {
        return true;
    }
    let s = suffixes();
    if s.exception.contains(d) {
        return false;
    }
    if s.exact.contains(d) {
        return true;
    }
    d.split_once('.')
        .is_some_and(|(_, parent)| s.wildcard.contains(parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_suffixes() {
        for ps in [
            "com",
            "co.uk",
            "github.io",
            "com.au",
            "foo.ck",
            "blogspot.com",
            "x",
        ] {
            assert!(is_public_suffix(ps), "{ps}");
        }
        for not in ["example.com", "www.ck", "bank.co.uk", "devices.example.com"] {
            assert!(!is_public_suffix(not), "{not}");
        }
    }

    #[test]
    fn dns_rules_parse_and_match() {
        let below = DnsRule::parse("*.Branch.Example.com.").unwrap();
        assert_eq!(below, DnsRule::Below("branch.example.com".into()));
        assert!(below.allows("a.branch.example.com", None));
        assert!(below.allows("a.b.branch.example.com", None));
        assert!(below.allows("*.branch.example.com", None));
        assert!(!below.allows("branch.example.com", None));
        assert!(!below.allows("evilbranch.example.com", None));
        let cn = DnsRule::parse("%cn%.devices.example.com").unwrap();
        assert!(cn.allows("pos-7.devices.example.com", Some("POS-7")));
        assert!(!cn.allows("pos-8.devices.example.com", Some("pos-7")));
        assert!(!cn.allows("pos-7.devices.example.com", None));
        for bad in [
            "*",
            "*.com",
            "*.co.uk",
            "a*.example.com",
            "*.*.example.com",
            "ex ample.com",
            "",
        ] {
            assert!(DnsRule::parse(bad).is_err(), "{bad:?}");
        }
        assert!(DnsRule::parse("*.%cn%.example.com").is_ok());
    }

    #[test]
    fn ip_ranges() {
        let r = IpRange::parse("10.20.0.0/16").unwrap();
        assert!(r.contains("10.20.3.4".parse().unwrap()));
        assert!(!r.contains("10.21.0.1".parse().unwrap()));
        assert!(!r.contains("::1".parse().unwrap()));
        let one = IpRange::parse("192.0.2.7").unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6 = IpRange::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        for bad in ["0.0.0.0/0", "10.0.0.0/33", "ten", "::/0"] {
            assert!(IpRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uri_rules() {
        let p = UriRule::parse("spiffe://example.org/devices/*").unwrap();
        assert!(p.allows("spiffe://example.org/devices/a", None));
        assert!(!p.allows("spiffe://example.org/admin", None));
        let e = UriRule::parse("urn:dev:serial:%cn%").unwrap();
        assert!(e.allows("urn:dev:serial:X1", Some("X1")));
        assert!(!e.allows("urn:dev:serial:X2", Some("X1")));
        for bad in ["*", "noscheme", "urn:a*b", "urn:a b"] {
            assert!(UriRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards_only_when_allowed_and_never_over_a_public_suffix() {
        let dns = |s: &str| SanEntry::Dns(s.into());
        let mut rules = NameRules {
            dns: vec![DnsRule::parse("*.example.com").unwrap()],
            ..NameRules::default()
        };
        let check = |r: &NameRules, e: SanEntry| r.check("t", &[e], None, |_| false);
        assert!(check(&rules, dns("a.example.com")).is_ok());
        assert!(matches!(
            check(&rules, dns("*.example.com")),
            Err(PolicyError::WildcardNotAllowed { .. })
        ));
        rules.allow_wildcards = true;
        assert!(check(&rules, dns("*.b.example.com")).is_ok());
        for (bad, suffix) in [("*", "*"), ("a*b.example.com", "a*b.example.com")] {
            match check(&rules, dns(bad)) {
                Err(PolicyError::WildcardTooBroad { suffix: s, .. }) => assert_eq!(s, suffix),
                other => panic!("{bad}: {other:?}"),
            }
        }
        // within no rule
        assert!(matches!(
            check(&rules, dns("*.example.org")),
            Err(PolicyError::NameNotAllowed { .. })
        ));
        // over a public suffix, even where a (careless) rule would allow it
        rules.dns.push(DnsRule::Below("uk".into()));
        match check(&rules, dns("*.co.uk")) {
            Err(PolicyError::WildcardTooBroad { suffix, .. }) => assert_eq!(suffix, "co.uk"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_servers_names_are_reserved() {
        use std::str::FromStr;
        let ca = x509_cert::name::Name::from_str("CN=estd CA,O=estd").unwrap();
        let r = ReservedNames {
            dns: vec!["localhost".into(), "est.example.com".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            subjects: vec![comparable(&ca)],
        };
        let dns = |s: &str| SanEntry::Dns(s.into());
        let alice = x509_cert::name::Name::from_str("CN=alice").unwrap();
        let check = |cn: Option<&str>, san: &[SanEntry]| r.check(&alice, cn, san);
        assert!(check(None, &[dns("LOCALHOST.")]).is_err());
        assert!(check(None, &[dns("*.example.com")]).is_err());
        assert!(check(None, &[dns("*.other.example.com")]).is_ok());
        assert!(check(None, &[SanEntry::Ip("127.0.0.1".parse().unwrap())]).is_err());
        // the same address written as IPv4-mapped IPv6
        assert!(check(None, &[SanEntry::Ip("::ffff:127.0.0.1".parse().unwrap())]).is_err());
        assert!(check(Some("Est.Example.com"), &[]).is_err());
        assert!(check(Some("*.example.com"), &[]).is_err());
        assert!(check(Some("127.0.0.1"), &[]).is_err());
        assert!(check(Some("alice"), &[dns("a.example.com")]).is_ok());
        // the CA's subject, whatever the case or string type
        assert!(r.check(&ca, None, &[]).is_err());
        let upper = x509_cert::name::Name::from_str("CN=ESTD CA,O=ESTD").unwrap();
        assert!(r.check(&upper, None, &[]).is_err());
        let mut printable = Vec::new();
        for rdn in ca.iter_rdn() {
            for atv in rdn.iter() {
                let text = crate::est::directory_string(&atv.value);
                printable.push(x509_cert::attr::AttributeTypeAndValue {
                    oid: atv.oid,
                    value: der::Any::new(der::Tag::PrintableString, text.into_bytes()).unwrap(),
                });
            }
        }
        let rdns: Vec<x509_cert::name::RelativeDistinguishedName> = printable
            .into_iter()
            .map(|a| x509_cert::name::RelativeDistinguishedName::try_from(vec![a]).unwrap())
            .collect();
        let as_printable =
            <x509_cert::name::Name as der::Decode>::from_der(&der::Encode::to_der(&rdns).unwrap())
                .unwrap();
        assert!(r.check(&as_printable, None, &[]).is_err());
    }

    #[test]
    fn rules_must_end_in_a_domain_of_ones_own() {
        for bad in [
            "%cn%",
            "*.%cn%",
            "%cn%.com",
            "*.%cn%.co.uk",
            "%cn%.%cn%.example.com.%cn%",
        ] {
            assert!(DnsRule::parse(bad).is_err(), "{bad}");
        }
        for ok in [
            "%cn%.example.com",
            "*.%cn%.example.com",
            "printer.example.com",
            "localhost",
        ] {
            assert!(DnsRule::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn uri_prefixes_take_plain_segments_only() {
        let p = UriRule::parse("spiffe://example.org/devices/*").unwrap();
        for bad in [
            "spiffe://example.org/devices/../admin",
            "spiffe://example.org/devices/%2e%2e/admin",
            "spiffe://example.org/devices/a/./b",
            "spiffe://example.org/devices/a@evil",
            "spiffe://example.org/devices/",
        ] {
            assert!(!p.allows(bad, None), "{bad}");
        }
        assert!(p.allows("spiffe://example.org/devices/pos-7/eth0", None));
        assert!(UriRule::parse("https://example.org*").is_err());
        let e = UriRule::parse("spiffe://example.org/devices/%cn%").unwrap();
        assert!(e.allows("spiffe://example.org/devices/pos-7", Some("pos-7")));
        assert!(!e.allows("spiffe://example.org/devices/../admin", Some("../admin")));
    }

    #[test]
    fn upn_and_email_rules() {
        let exact = MailRule::parse("%cn%@Corp.Example.com").unwrap();
        assert!(exact.allows("Joe@corp.example.com", Some("joe")));
        assert!(!exact.allows("administrator@corp.example.com", Some("joe")));
        let at = MailRule::parse("*@corp.example.com").unwrap();
        assert!(at.allows("anyone@CORP.example.com", None));
        assert!(!at.allows("anyone@evil.example.com", None));
        assert!(!at.allows("@corp.example.com", None));
        assert!(MailRule::parse("*").unwrap().allows("x@y.z", None));
        for bad in ["nodomain", "a*b@example.com", "*@com", "@example.com"] {
            assert!(MailRule::parse(bad).is_err(), "{bad}");
        }
    }
}
