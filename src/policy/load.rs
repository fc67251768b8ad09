//! Reading a template from its TOML file: every key checked, names resolved, defaults
//! filled in.

use super::*;
use crate::fields::PatternEntry;

impl Template {
    /// Parses one template from TOML text; `file` names it in errors.
    pub fn from_toml(file: &Path, text: &str) -> Result<Self, TemplateError> {
        let bad = |reason: String| TemplateError::Invalid {
            file: file.to_path_buf(),
            reason,
        };
        let raw: RawTemplate = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if !crate::est::valid_label(&raw.name) {
            return Err(bad(format!(
                "name: {:?} is not a valid EST label (letters, digits, '-' and '_', not an operation name)",
                raw.name
            )));
        }
        if raw.key_types.is_empty() {
            return Err(bad("key_types: must name at least one key type".into()));
        }
        let key_type = |key: &str, s: &str| {
            AllowedKey::parse(s).ok_or_else(|| {
                bad(format!(
                    "{key}: unknown key type {s:?} (expected ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519)"
                ))
            })
        };
        let key_types = raw
            .key_types
            .iter()
            .map(|s| key_type("key_types", s))
            .collect::<Result<Vec<_>, _>>()?;
        let server_keygen_key = match &raw.server_keygen_key {
            Some(s) => key_type("server_keygen_key", s)?,
            None => key_types[0],
        };
        if !(1..=3650).contains(&raw.validity_days) {
            return Err(bad(format!(
                "validity_days: {} is out of range (1 to 3650)",
                raw.validity_days
            )));
        }
        let key_usage = raw
            .key_usage
            .iter()
            .map(|s| key_usage(s).ok_or_else(|| bad(format!("key_usage: unknown usage {s:?} (expected digital_signature, content_commitment, key_encipherment, data_encipherment or key_agreement)"))))
            .collect::<Result<Vec<_>, _>>()?;
        let extended_key_usage = raw
            .extended_key_usage
            .iter()
            .map(|s| eku(s).ok_or_else(|| bad(format!("extended_key_usage: unknown usage {s:?} (expected client_auth, server_auth, email_protection or code_signing)"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut required_rdns = Vec::new();
        for (k, v) in &raw.required_rdns {
            let (short, oid) = rules::RDN_TYPES
                .iter()
                .find(|(short, _)| short == k)
                .ok_or_else(|| {
                    bad(format!(
                        "required_rdns: unknown RDN {k:?} (expected O, OU, C, ST or L)"
                    ))
                })?;
            if v.is_empty() {
                return Err(bad(format!("required_rdns: {k} must not be empty")));
            }
            required_rdns.push(RequiredRdn {
                short,
                oid: ObjectIdentifier::new_unwrap(oid),
                value: v.clone(),
            });
        }
        let san_style = match raw.san_style.as_str() {
            "mac" => SanStyle::Mac,
            "upn" => SanStyle::Upn,
            "upn+email" => SanStyle::UpnEmail,
            "email" => SanStyle::Email,
            "dns" => SanStyle::Dns,
            "none" => SanStyle::None,
            "other" => {
                if raw.san_pattern.is_empty() {
                    return Err(bad("san_pattern: san_style \"other\" needs a pattern, e.g. [\"upn:%uname%@%domain%\"]".into()));
                }
                SanStyle::Other(
                    raw.san_pattern
                        .iter()
                        .map(|p| {
                            PatternEntry::parse(p).map_err(|e| bad(format!("san_pattern: {e}")))
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            other => {
                return Err(bad(format!(
                    "san_style: {other:?} is not one of mac, upn, upn+email, email, dns, none, other"
                )));
            }
        };
        if !raw.san_pattern.is_empty() && !matches!(san_style, SanStyle::Other(_)) {
            return Err(bad(
                "san_pattern: only used with san_style = \"other\"".into()
            ));
        }
        let mac_encoding = match (raw.mac_encoding.as_str(), &raw.mac_othername_oid) {
            ("uri", None) => MacEncoding::Uri,
            ("dns", None) => MacEncoding::Dns,
            ("othername", oid) => MacEncoding::OtherName(
                ObjectIdentifier::new(oid.as_deref().unwrap_or(san::MAC_ADDRESS_OID))
                    .map_err(|e| bad(format!("mac_othername_oid: {e}")))?,
            ),
            ("uri" | "dns", Some(_)) => {
                return Err(bad(
                    "mac_othername_oid: only used with mac_encoding = \"othername\"".into(),
                ));
            }
            (other, _) => {
                return Err(bad(format!(
                    "mac_encoding: {other:?} is not uri, dns or othername"
                )));
            }
        };
        let approval = match raw.approval.as_str() {
            "auto" => Approval::Auto,
            "manual" => Approval::Manual,
            other => {
                return Err(bad(format!(
                    "approval: {other:?} is not \"auto\" or \"manual\""
                )));
            }
        };
        if !(1..=86_400).contains(&raw.retry_after_secs) {
            return Err(bad(format!(
                "retry_after_secs: {} is out of range (1 to 86400)",
                raw.retry_after_secs
            )));
        }
        let extra_attrs = raw
            .csr_attrs
            .iter()
            .map(|s| {
                ObjectIdentifier::new(s)
                    .map_err(|e| bad(format!("csr_attrs: {s:?} is not an OID: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if raw.allowed_groups.as_ref().is_some_and(Vec::is_empty) && raw.allowed_users.is_empty() {
            return Err(bad(
                "allowed_groups: empty and no allowed_users: nobody could use the template (remove the file to retire it)".into(),
            ));
        }
        for g in raw.allowed_groups.iter().flatten() {
            if g.trim().is_empty() || rules::has_control(g) {
                return Err(bad(format!("allowed_groups: {g:?} is not a group name")));
            }
        }
        for u in &raw.allowed_users {
            crate::model::check_user_name(u).map_err(|e| bad(format!("allowed_users: {e}")))?;
        }
        let mut allowed_rdns = Vec::new();
        for short in &raw.allowed_rdns {
            let t = subject::by_short(short).filter(|t| t.short != "CN").ok_or_else(|| {
                bad(format!(
                    "allowed_rdns: unknown RDN {short:?} (expected one of {}; CN is always allowed)",
                    subject::ATTRIBUTE_TYPES
                        .iter()
                        .filter(|t| t.short != "CN")
                        .map(|t| t.short)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            allowed_rdns.push(ObjectIdentifier::new_unwrap(t.oid));
        }
        let names = name_rules(&raw, &san_style, &extended_key_usage).map_err(bad)?;
        if let Some(c) = &raw.scep_challenge
            && c.starts_with("$argon2")
            && !crate::auth::is_phc(c)
        {
            return Err(bad(
                "scep_challenge: starts like an argon2 hash but is not one (estd scep hash-challenge makes one)".into(),
            ));
        }
        if let Some(c) = &raw.scep_challenge
            && (c.len() < 8 || c.len() > 255 || c.chars().any(char::is_control))
        {
            return Err(bad(
                "scep_challenge: 8 to 255 characters without control characters".into(),
            ));
        }
        let mut scep_ra_signers = Vec::new();
        for f in &raw.scep_ra_signers {
            // relative to the template's directory
            let path = file.parent().unwrap_or(Path::new(".")).join(f);
            let der = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|pem| {
                    use rustls_pki_types::CertificateDer;
                    use rustls_pki_types::pem::PemObject;
                    CertificateDer::from_pem_slice(&pem).map_err(|e| format!("{e:?}"))
                })
                .map_err(|e| bad(format!("scep_ra_signers: {}: {e}", path.display())))?;
            scep_ra_signers.push(der.to_vec());
        }
        if raw.issuer != crate::model::LOCAL_ISSUER && raw.rsa_pss {
            return Err(bad(format!(
                "rsa_pss: the upstream CA {} chooses its signature algorithm; remove rsa_pss",
                raw.issuer
            )));
        }
        let vendor = if raw.trust_vendor_cas.is_empty() {
            if !raw.vendor_crls.is_empty() || raw.idevid_allow_list {
                return Err(bad(
                    "vendor_crls and idevid_allow_list need trust_vendor_cas".into(),
                ));
            }
            None
        } else {
            Some(
                vendor::VendorTrust::load(
                    file.parent().unwrap_or(Path::new(".")),
                    &raw.trust_vendor_cas,
                    &raw.vendor_crls,
                    &raw.idevid_cn,
                    raw.idevid_allow_list,
                )
                .map_err(bad)?,
            )
        };
        let mut auth = Vec::new();
        for a in &raw.auth {
            let scheme = AuthScheme::parse(a).ok_or_else(|| {
                bad(format!(
                    "auth: unknown {a:?} (expected basic, code or bearer)"
                ))
            })?;
            if auth.contains(&scheme) {
                return Err(bad(format!("auth: {a:?} twice")));
            }
            auth.push(scheme);
        }
        if auth.is_empty() && raw.trust_vendor_cas.is_empty() {
            return Err(bad(
                "auth: empty: name basic, code or bearer (or set trust_vendor_cas)".into(),
            ));
        }
        if auth.contains(&AuthScheme::Code) && raw.approval == "manual" {
            return Err(bad(
                "auth = [\"code\"] with approval = \"manual\": a device's repeated request after the approval would present a used code (SCEP challenges do wait for approval)".into(),
            ));
        }
        if auth.contains(&AuthScheme::Code) && raw.channel_binding {
            return Err(bad(
                "auth = [\"code\"] and channel_binding both use the CSR's challengePassword: choose one"
                    .into(),
            ));
        }
        Ok(Template {
            auth,
            vendor,
            issuer: raw.issuer.clone(),
            scep: raw.scep,
            scep_ra_signers,
            scep_challenge: raw.scep_challenge.clone().map(zeroize::Zeroizing::new),
            raw: raw.clone(),
            name: raw.name,
            description: raw.description,
            key_types,
            server_keygen_key,
            validity: Duration::from_secs(u64::from(raw.validity_days) * 86_400),
            key_usage,
            extended_key_usage,
            required_rdns,
            san_style,
            san_optional: raw.san_optional,
            cn_must_match_user: raw.cn_must_match_user,
            mac_encoding,
            approval,
            retry_after: Duration::from_secs(u64::from(raw.retry_after_secs)),
            channel_binding: raw.channel_binding,
            extra_attrs,
            fill_missing: raw.fill_missing,
            domain: raw.domain,
            pkcs12_legacy: raw.pkcs12_legacy,
            rsa_pss: raw.rsa_pss,
            crl_distribution_point: raw.crl_distribution_point,
            ocsp: raw.ocsp,
            allowed_groups: raw.allowed_groups,
            allowed_users: raw.allowed_users,
            subject_rules: SubjectRules {
                allowed: allowed_rdns,
                drop_unlisted: raw.drop_unlisted_rdns,
            },
            names,
        })
    }
}

/// The template's name rules: `dns_names`, `ip_addresses`, `uri_patterns` as written, plus
/// the `other` pattern's DNS and URI entries whose only variable is `%cn%` (the pattern is
/// its own rule). A style or pattern that takes names from the request needs rules saying
/// which; `server_auth` needs rules at all: TLS server certificates only for names the
/// template allows.
fn name_rules(
    raw: &RawTemplate,
    style: &SanStyle,
    eku: &[ExtendedKeyUsagePurpose],
) -> Result<NameRules, String> {
    fn each<T>(
        key: &str,
        list: &[String],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        list.iter()
            .map(|r| parse(r).map_err(|e| format!("{key}: {e}")))
            .collect()
    }
    let mut rules = NameRules {
        dns: each("dns_names", &raw.dns_names, names::DnsRule::parse)?,
        ips: each("ip_addresses", &raw.ip_addresses, names::IpRange::parse)?,
        uris: each("uri_patterns", &raw.uri_patterns, names::UriRule::parse)?,
        upns: each("upn_names", &raw.upn_names, names::MailRule::parse)?,
        emails: each("email_names", &raw.email_names, names::MailRule::parse)?,
        allow_wildcards: raw.allow_wildcards,
    };
    let explicit = (
        !rules.dns.is_empty(),
        !rules.uris.is_empty(),
        !rules.upns.is_empty(),
        !rules.emails.is_empty(),
    );
    if let SanStyle::Other(pattern) = style {
        for p in pattern {
            let only_cn = san::VARIABLES
                .iter()
                .all(|v| *v == "%cn%" || !p.text.contains(v));
            let bad = |e: String| format!("san_pattern: {e}");
            let needs = |kind: &str, key: &str| {
                format!(
                    "san_pattern: \"{kind}:{}\" takes names from the request: say which may be issued with {key}",
                    p.text
                )
            };
            match p.kind {
                san::PatternKind::Dns if only_cn => {
                    rules.dns.push(names::DnsRule::parse(&p.text).map_err(bad)?)
                }
                san::PatternKind::Uri if only_cn => rules
                    .uris
                    .push(names::UriRule::parse(&p.text).map_err(bad)?),
                san::PatternKind::Upn if only_cn => rules
                    .upns
                    .push(names::MailRule::parse(&p.text).map_err(bad)?),
                san::PatternKind::Email if only_cn => rules
                    .emails
                    .push(names::MailRule::parse(&p.text).map_err(bad)?),
                san::PatternKind::Dns if !explicit.0 => return Err(needs("dns", "dns_names")),
                san::PatternKind::Uri if !explicit.1 => {
                    return Err(needs("uri", "uri_patterns"));
                }
                san::PatternKind::Upn if !explicit.2 => return Err(needs("upn", "upn_names")),
                san::PatternKind::Email if !explicit.3 => {
                    return Err(needs("email", "email_names"));
                }
                _ => {}
            }
        }
    }
    if *style == SanStyle::Dns && rules.dns.is_empty() && rules.ips.is_empty() {
        return Err("dns_names: san_style \"dns\" takes DNS names from the request: say which may be issued, e.g. dns_names = [\"%cn%.devices.example.com\"] or [\"*.devices.example.com\"] (or ip_addresses)".into());
    }
    if matches!(style, SanStyle::Upn | SanStyle::UpnEmail) && rules.upns.is_empty() {
        return Err("upn_names: this san_style takes UPNs from the request: say which may be issued, e.g. upn_names = [\"%cn%@corp.example.com\"], [\"*@corp.example.com\"], or [\"*\"] for a template only trusted connectors may use".into());
    }
    if matches!(style, SanStyle::Email | SanStyle::UpnEmail) && rules.emails.is_empty() {
        return Err("email_names: this san_style takes email addresses from the request: say which may be issued, e.g. email_names = [\"%cn%@example.com\"], [\"*@example.com\"], or [\"*\"] for a template only trusted connectors may use".into());
    }
    if eku.is_empty() {
        return Err("extended_key_usage: name at least one (a certificate without one may be used for anything, TLS servers included)".into());
    }
    if eku.contains(&ExtendedKeyUsagePurpose::ServerAuth)
        && rules.dns.is_empty()
        && rules.ips.is_empty()
    {
        return Err("extended_key_usage: server_auth needs name rules (dns_names or ip_addresses): TLS server certificates only for names the template allows".into());
    }
    if rules.allow_wildcards && rules.dns.is_empty() {
        return Err("allow_wildcards: only with dns_names".into());
    }
    if raw.allowed_rdns.iter().any(|r| r == "emailAddress") && rules.emails.is_empty() {
        return Err(
            "allowed_rdns: emailAddress needs email_names saying which addresses may be issued"
                .into(),
        );
    }
    Ok(rules)
}

fn key_usage(s: &str) -> Option<KeyUsagePurpose> {
    Some(match s {
        "digital_signature" => KeyUsagePurpose::DigitalSignature,
        "content_commitment" | "non_repudiation" => KeyUsagePurpose::ContentCommitment,
        "key_encipherment" => KeyUsagePurpose::KeyEncipherment,
        "data_encipherment" => KeyUsagePurpose::DataEncipherment,
        "key_agreement" => KeyUsagePurpose::KeyAgreement,
        _ => return None,
    })
}

fn eku(s: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match s {
        "client_auth" => ExtendedKeyUsagePurpose::ClientAuth,
        "server_auth" => ExtendedKeyUsagePurpose::ServerAuth,
        "email_protection" => ExtendedKeyUsagePurpose::EmailProtection,
        "code_signing" => ExtendedKeyUsagePurpose::CodeSigning,
        _ => return None,
    })
}
