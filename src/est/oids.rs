//! OIDs estd writes itself, and names for the OIDs an operator meets in `/csrattrs` and
//! templates (for display only).

/// Microsoft's User Principal Name otherName.
pub const UPN_OID: &str = "1.3.6.1.4.1.311.20.2.3";
/// RFC 4524 / RFC 7030's macAddress, the default otherName OID for MACs.
pub const MAC_ADDRESS_OID: &str = "1.3.6.1.1.1.1.22";

/// The conventional name of an OID, when it is one estd or its peers use.
pub fn oid_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "1.2.840.113549.1.9.7" => "challengePassword",
        "1.2.840.113549.1.9.14" => "extensionRequest",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.2.840.10045.2.1" => "ecPublicKey",
        "1.2.840.113549.1.1.1" => "rsaEncryption",
        "1.3.132.0.34" => "secp384r1",
        "1.2.840.10045.3.1.7" => "prime256v1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "2.5.29.17" => "subjectAltName",
        "1.3.6.1.1.1.1.22" => "macAddress",
        "1.3.101.112" => "Ed25519",
        "1.3.6.1.4.1.311.20.2.3" => "userPrincipalName",
        "2.5.4.5" => "serialNumber",
        "2.5.4.3" => "commonName",
        "2.5.4.6" => "countryName",
        "2.5.4.7" => "localityName",
        "2.5.4.8" => "stateOrProvinceName",
        "2.5.4.10" => "organizationName",
        "2.5.4.11" => "organizationalUnitName",
        "2.5.29.15" => "keyUsage",
        "2.5.29.37" => "extKeyUsage",
        "1.2.840.113549.1.9.16.2.61" => "certificationRequestInfoTemplate",
        "1.2.840.113549.1.9.16.2.62" => "extensionReqTemplate",
        _ => return None,
    })
}

/// `1.2.3 (name)`, or the bare OID when it has no name here.
pub fn named(oid: &str) -> String {
    match oid_name(oid) {
        Some(n) => format!("{oid} ({n})"),
        None => oid.to_string(),
    }
}
