//! The template's loading and evaluation, end to end. A test module (`#[cfg(test)] mod
//! tests` in policy/mod.rs): fixed inputs, an unwrap failing is the test failing.

use super::*;

const GOOD: &str = r#"
name = "default"
description = "test"
key_types = ["ec-p256", "rsa-2048"]
validity_days = 365
csr_attrs = ["1.2.840.113549.1.9.7"]
"#;

fn parse(text: &str) -> Result<Template, TemplateError> {
    Template::from_toml(Path::new("t.toml"), text)
}

#[test]
fn a_good_template_compiles() {
    let t = parse(GOOD).unwrap();
    assert_eq!(t.name, "default");
    assert_eq!(t.validity, Duration::from_secs(365 * 86_400));
    assert_eq!(t.key_usage, vec![KeyUsagePurpose::DigitalSignature]);
    assert_eq!(
        t.extended_key_usage,
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    );
    assert_eq!(t.extra_attrs.len(), 1);
    assert_eq!(t.san_style, SanStyle::None);
    assert!(t.cn_must_match_user);
    assert_eq!(t.approval, Approval::Auto);
    assert_eq!(t.server_keygen_key, AllowedKey::EcP256);
    assert!(t.check_key(KeyType::EcP256).is_ok());
    assert!(t.check_key(KeyType::Rsa(2048)).is_ok());
    let err = t.check_key(KeyType::EcP384).unwrap_err();
    assert_eq!(
        err.to_string(),
        "key type ec-p384 is not allowed by template default (allowed: ec-p256, rsa-2048)"
    );
}

#[test]
fn bad_values_name_the_file_and_key() {
    for (text, needle) in [
        (
            GOOD.replace("\"rsa-2048\"", "\"rsa-1024\""),
            "key_types: unknown key type \"rsa-1024\"",
        ),
        (GOOD.replace("365", "0"), "validity_days: 0 is out of range"),
        (
            GOOD.replace("\"default\"", "\"cacerts\""),
            "name: \"cacerts\" is not a valid EST label",
        ),
        (
            GOOD.replace("\"default\"", "\"a/b\""),
            "is not a valid EST label",
        ),
        (
            GOOD.replace("1.2.840.113549.1.9.7", "nope"),
            "csr_attrs: \"nope\" is not an OID",
        ),
        (format!("{GOOD}\ncolour = 1\n"), "unknown field `colour`"),
        (
            GOOD.replace("validity_days = 365", ""),
            "missing field `validity_days`",
        ),
        // who may get which certificate: rules that are missing or too broad
        (
            format!("{GOOD}extended_key_usage = [\"server_auth\"]\n"),
            "extended_key_usage: server_auth needs name rules (dns_names or ip_addresses)",
        ),
        (
            format!("{GOOD}san_style = \"dns\"\n"),
            "dns_names: san_style \"dns\" takes DNS names from the request",
        ),
        (
            format!("{GOOD}san_style = \"other\"\nsan_pattern = [\"dns:%cn%.%domain%\"]\n"),
            "san_pattern: \"dns:%cn%.%domain%\" takes names from the request",
        ),
        (
            format!("{GOOD}san_style = \"dns\"\ndns_names = [\"*\"]\n"),
            "dns_names: \"*\": a bare * would allow every name",
        ),
        (
            format!("{GOOD}san_style = \"dns\"\ndns_names = [\"*.co.uk\"]\n"),
            "covers the public suffix \"co.uk\"",
        ),
        (
            format!("{GOOD}san_style = \"dns\"\ndns_names = [\"a*.example.com\"]\n"),
            "'*' only as the whole first label",
        ),
        (
            format!("{GOOD}san_style = \"dns\"\nip_addresses = [\"0.0.0.0/0\"]\n"),
            "would allow every address",
        ),
        (
            format!("{GOOD}uri_patterns = [\"*\"]\n"),
            "uri_patterns: \"*\" does not start with a scheme",
        ),
        (
            format!("{GOOD}allow_wildcards = true\n"),
            "allow_wildcards: only with dns_names",
        ),
        (
            format!("{GOOD}allowed_rdns = [\"XX\"]\n"),
            "allowed_rdns: unknown RDN \"XX\"",
        ),
        (
            format!("{GOOD}allowed_groups = []\n"),
            "nobody could use the template",
        ),
        (
            format!("{GOOD}allowed_users = [\"b{}d\"]\n", "\u{430}"),
            "allowed_users: user name",
        ),
        (
            format!("{GOOD}auth = [\"digest\"]\n"),
            "auth: unknown \"digest\"",
        ),
        (
            format!("{GOOD}auth = [\"code\", \"code\"]\n"),
            "auth: \"code\" twice",
        ),
        (format!("{GOOD}auth = []\n"), "auth: empty"),
        (
            format!("{GOOD}auth = [\"code\"]\nchannel_binding = true\n"),
            "both use the CSR's challengePassword",
        ),
        (
            format!("{GOOD}idevid_allow_list = true\n"),
            "need trust_vendor_cas",
        ),
    ] {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("t.toml: "), "{err}");
        assert!(err.contains(needle), "{err} should contain {needle}");
    }
}

#[test]
fn access_and_name_rules_compile() {
    let t = parse(&format!(
        "{GOOD}allowed_groups = [\"mdm-connectors\"]\nallowed_users = [\"Joe\"]\n\
         san_style = \"other\"\nsan_pattern = [\"uri:urn:mdm:%cn%\", \"dns:%cn%.example.com\"]\n"
    ))
    .unwrap();
    let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(t.may_use("alice", &g(&["mdm-connectors"]), "est-users"));
    assert!(!t.may_use("alice", &g(&["est-users"]), "est-users"));
    assert!(
        t.may_use("joe", &[], "est-users"),
        "allowed_users, regardless of case"
    );
    // a pattern whose only variable is %cn% is its own rule
    assert_eq!(t.names.describe_dns(), "%cn%.example.com");
    assert_eq!(t.names.describe_uris(), "urn:mdm:%cn%");
    let d = parse(GOOD).unwrap();
    assert!(d.may_use("alice", &g(&["est-users"]), "est-users"));
    assert!(!d.may_use("alice", &g(&["contractors"]), "est-users"));
}

fn csr(subject: &str, sans: Vec<rcgen::SanType>) -> Csr {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    for (k, v) in subject.split(',').filter_map(|kv| kv.split_once('=')) {
        let ty = match k {
            "CN" => rcgen::DnType::CommonName,
            "OU" => rcgen::DnType::OrganizationalUnitName,
            "O" => rcgen::DnType::OrganizationName,
            _ => panic!("{k}"),
        };
        params.distinguished_name.push(ty, v);
    }
    params.subject_alt_names = sans;
    Csr::parse(params.serialize_request(&key).unwrap().der()).unwrap()
}

const JOE: Requester<'static> = Requester {
    name: "joe",
    is_admin: false,
};

#[test]
fn evaluate_runs_the_rules_in_order() {
    let t = parse(&format!(
        "{}san_style = \"mac\"\n[required_rdns]\nOU = \"POS\"\n",
        GOOD.replace("csr_attrs = [\"1.2.840.113549.1.9.7\"]", "")
    ))
    .unwrap();
    let mac = |s: &str| vec![rcgen::SanType::DnsName(s.try_into().unwrap())];
    let ok = t
        .evaluate(
            &csr("CN=joe,OU=POS", mac("00:11:22:33:44:55")),
            &JOE,
            &EvalContext::default(),
        )
        .unwrap();
    assert_eq!(
        ok.san,
        vec![SanEntry::Uri("urn:dev:mac:001122334455".into())]
    );
    let err = |c: Csr| t.evaluate(&c, &JOE, &EvalContext::default()).unwrap_err();
    // CN characters come before the CN owner, which comes before the RDNs and the SAN
    assert_eq!(err(csr("CN=eve*,OU=x", mac("bad"))), PolicyError::CnInvalid);
    assert_eq!(err(csr("CN=eve,OU=x", mac("bad"))), PolicyError::CnMismatch);
    assert_eq!(
        err(csr("CN=joe,OU=x", mac("bad"))),
        PolicyError::RdnMismatch { rdn: "OU".into() }
    );
    assert_eq!(
        err(csr("CN=joe,OU=POS", mac("00-11-22-33-44"))),
        PolicyError::InvalidMac
    );
    // an admin may name someone else
    let admin = Requester {
        name: "admin",
        is_admin: true,
    };
    assert!(
        t.evaluate(
            &csr("CN=eve,OU=POS", mac("001122334455")),
            &admin,
            &EvalContext::default()
        )
        .is_ok()
    );
}

#[test]
fn control_characters_are_refused_in_every_subject_attribute_and_san_value() {
    let t = parse(&format!(
        "{}san_style = \"dns\"\nsan_optional = true\ncn_must_match_user = false\ndns_names = [\"joe.example\"]\nallowed_rdns = [\"O\", \"OU\"]\n",
        GOOD.replace("csr_attrs = [\"1.2.840.113549.1.9.7\"]", "")
    ))
    .unwrap();
    let err = |c: Csr| t.evaluate(&c, &JOE, &EvalContext::default()).unwrap_err();
    let control = |field: &str| PolicyError::ControlChars {
        field: field.into(),
    };
    for cn in [
        "bad\ncn",
        "bad\0",
        "\rbad",
        "a\tb",
        "a\u{1b}[2Jb",
        "a\u{7f}",
        "a\u{85}b",
        "a\u{9f}",
        "adm\u{202e}nim",
        "a\u{200b}dmin",
        "a\u{2028}b",
        "\u{feff}a",
    ] {
        let e = err(csr(&format!("CN={cn}"), vec![]));
        assert_eq!(e, control("CN"), "{cn:?}");
        assert_eq!(
            e.to_string(),
            "The given CN is invalid. Cannot contain control characters"
        );
    }
    // before the CN's forbidden characters, and in any attribute
    assert_eq!(err(csr("CN=x*\n", vec![])), control("CN"));
    assert_eq!(err(csr("CN=joe,O=Ex\u{0}ample", vec![])), control("O"));
    assert_eq!(err(csr("CN=joe,OU=a\u{8}b", vec![])), control("OU"));
    // every SAN type that carries text
    let san = control(rules::SAN_FIELD);
    assert_eq!(
        san.to_string(),
        "The given Subject alternative name is invalid. Cannot contain control characters"
    );
    for entry in [
        rcgen::SanType::DnsName("a\nb.example".try_into().unwrap()),
        rcgen::SanType::Rfc822Name("joe\0@example.com".try_into().unwrap()),
        rcgen::SanType::URI("urn:x\u{1b}".try_into().unwrap()),
        rcgen::SanType::OtherName((
            vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
            rcgen::OtherNameValue::Utf8String("joe\r\n@example.com".into()),
        )),
    ] {
        assert_eq!(err(csr("CN=joe", vec![entry.clone()])), san, "{entry:?}");
    }
    // a BMPString is read as UTF-16, not as bytes: "joe" is three letters, no NULs
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        rcgen::DnValue::BmpString("Joe".try_into().unwrap()),
    );
    let bmp = Csr::parse(params.serialize_request(&key).unwrap().der()).unwrap();
    assert!(t.evaluate(&bmp, &JOE, &EvalContext::default()).is_ok());
    // a Teletex byte 0x85 is the C1 control NEL; in a BMPString, U+0085 is too
    let t61 = der::Any::new(der::Tag::TeletexString, vec![b'a', 0x85]).unwrap();
    assert!(rules::has_control(&crate::est::directory_string(&t61)));
    let bmp = der::Any::new(der::Tag::BmpString, vec![0, b'a', 0, 0x85]).unwrap();
    assert!(rules::has_control(&crate::est::directory_string(&bmp)));
    let bmp = der::Any::new(der::Tag::BmpString, vec![0, b'a', 0x30, 0x42]).unwrap();
    assert_eq!(crate::est::directory_string(&bmp), "a\u{3042}");
    // clean values pass
    assert!(
        t.evaluate(
            &csr(
                "CN=joe,O=Example",
                vec![rcgen::SanType::DnsName("joe.example".try_into().unwrap())]
            ),
            &JOE,
            &EvalContext::default()
        )
        .is_ok()
    );
}

/// libest's example client walks a `/csrattrs` answer OID by OID and loops for ever when
/// it does not end with one: every non-empty answer ends with an OID.
#[test]
fn csr_attrs_end_with_an_oid() {
    for key_types in [
        "\"rsa-2048\"",
        "\"rsa-3072\", \"ec-p256\"",
        "\"ec-p384\"",
        "\"ed25519\"",
    ] {
        for extra in [
            "",
            "channel_binding = true\n",
            "san_style = \"mac\"\n",
            "san_style = \"upn\"\nupn_names = [\"*\"]\ncsr_attrs = [\"1.2.3.4\"]\n",
        ] {
            let t = parse(&format!(
                "name = \"t\"\nkey_types = [{key_types}]\nvalidity_days = 1\n{extra}"
            ))
            .unwrap();
            let attrs = t.csr_attrs();
            assert!(!attrs.is_empty());
            let der = crate::est::csrattrs(&attrs).unwrap();
            // the last TLV of the encoding: an OBJECT IDENTIFIER (tag 6) with its length
            let last_oid_at = (0..der.len())
                .rev()
                .find(|&i| der[i] == 0x06 && i + 2 + usize::from(der[i + 1]) == der.len());
            assert!(last_oid_at.is_some(), "{key_types} {extra}: {attrs:?}");
        }
    }
}

#[test]
fn csr_attrs_follow_the_template() {
    let oid = |s| ObjectIdentifier::new_unwrap(s);
    let t = parse(&format!(
        "{GOOD}san_style = \"mac\"\nchannel_binding = true\n"
    ))
    .unwrap();
    let attrs = t.csr_attrs();
    // first the RFC 9908 template: the CN to fill, a P-256 key, a SAN to fill, the usages
    let CsrAttr::AttrDer(template_oid, der) = &attrs[0] else {
        panic!("no template first: {attrs:?}");
    };
    assert_eq!(*template_oid, oid("1.2.840.113549.1.9.16.2.61"));
    let cri = crate::est::csrtemplate::CriTemplate::decode(der).unwrap();
    assert_eq!(cri.subject.len(), 1);
    assert_eq!(
        (cri.subject[0].oid, cri.subject[0].value.as_deref()),
        (oid("2.5.4.3"), None)
    );
    assert_eq!(cri.key, Some(KeyType::EcP256));
    assert_eq!(
        cri.extensions
            .iter()
            .map(|e| (e.oid.to_string(), e.value.is_some()))
            .collect::<Vec<_>>(),
        vec![
            ("2.5.29.17".to_string(), false),
            ("2.5.29.15".to_string(), true),
            ("2.5.29.37".to_string(), true)
        ]
    );
    assert_eq!(
        attrs[1..],
        vec![
            CsrAttr::Oid(oid("1.2.840.113549.1.9.7")),
            CsrAttr::AttrOids(oid("1.2.840.10045.2.1"), vec![oid("1.2.840.10045.3.1.7")]),
            CsrAttr::Oid(oid("1.2.840.10045.4.3.2")),
            CsrAttr::AttrOids(
                oid("1.2.840.113549.1.9.14"),
                vec![oid("2.5.29.17"), oid("1.3.6.1.1.1.1.22")]
            ),
            CsrAttr::Oid(oid("1.2.840.113549.1.9.7")),
        ]
    );
    let open = parse(
        "name = \"open\"\nkey_types = [\"ec-p256\", \"ec-p384\", \"rsa-2048\", \"rsa-3072\", \"rsa-4096\", \"ed25519\"]\nvalidity_days = 1\n",
    )
    .unwrap();
    assert!(
        open.csr_attrs().is_empty(),
        "a template that asks nothing: an empty SEQUENCE"
    );
    let rsa = parse(
        "name = \"r\"\nkey_types = [\"rsa-3072\"]\nvalidity_days = 1\nsan_style = \"upn\"\nupn_names = [\"*\"]\n",
    )
    .unwrap();
    assert_eq!(
        rsa.csr_attrs()[1],
        CsrAttr::AttrInt(oid("1.2.840.113549.1.1.1"), 3072)
    );
    // fixed RDNs alone: the template, then a bare OID (the list ends with one)
    let ou = parse(
        "name = \"o\"\nkey_types = [\"ec-p256\", \"ec-p384\", \"rsa-2048\", \"rsa-3072\", \"rsa-4096\", \"ed25519\"]\nvalidity_days = 1\nrequired_rdns = { OU = \"POS\" }\n",
    )
    .unwrap();
    let attrs = ou.csr_attrs();
    assert_eq!(attrs.len(), 2, "{attrs:?}");
    assert_eq!(attrs[1], CsrAttr::Oid(oid("2.5.4.3")));
}

#[test]
fn labels_and_default() {
    let a = parse(GOOD).unwrap();
    let b = parse(&GOOD.replace("\"default\"", "\"iot\"")).unwrap();
    let set = Templates::new(vec![a.clone(), b], "default").unwrap();
    assert_eq!(set.get(None).unwrap().name, "default");
    assert_eq!(set.get(Some("iot")).unwrap().name, "iot");
    assert!(set.get(Some("nope")).is_none());
    assert!(Templates::new(vec![a.clone(), a.clone()], "default").is_err());
    assert!(
        Templates::new(vec![a], "missing")
            .unwrap_err()
            .contains("does not exist")
    );
}

/// A template's RFC 9908 CSR template: a CN to fill only where the template needs one (the
/// user's name); a CSR is checked against it naming the first mismatch. `auth = ["code"]`
/// with manual approval is refused at load.
#[test]
fn the_csr_template_and_its_check() {
    let strict = parse("name = \"s\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 1\n").unwrap();
    let t = strict.cri_template().unwrap();
    assert_eq!(t.subject.len(), 1, "a CN to fill: {t:?}");
    let free = parse(
        "name = \"f\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 1\ncn_must_match_user = false\n",
    )
    .unwrap();
    assert!(
        free.cri_template().unwrap().subject.is_empty(),
        "no CN asked for"
    );
    // (rcgen's default subject has a CN: this one has only an O)
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Example");
    let no_cn = Csr::parse(params.serialize_request(&key).unwrap().der()).unwrap();
    assert_eq!(
        t.check(&no_cn, true),
        Err("the CSR's subject has no commonName, which the CSR template asks for".to_string())
    );
    assert!(t.check(&csr("CN=k-1", vec![]), true).is_ok());
    let e = parse("name = \"m\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 1\nauth = [\"code\"]\napproval = \"manual\"\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("approval = \"manual\""), "{e}");
}
