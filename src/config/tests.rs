//! Loading the configuration: defaults, the file, the environment, and what is refused.

use super::*;
use figment::Jail;

fn load_in_jail(jail: &Jail) -> Result<Config, ConfigError> {
    let _ = jail;
    Config::load(None)
}

#[test]
fn defaults_without_a_file() {
    Jail::expect_with(|jail| {
        let c = load_in_jail(jail).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("."));
        assert_eq!(c.tls_cert, PathBuf::from("./certs/tls.pem"));
        assert_eq!(
            c.database,
            Database::Sqlite {
                path: PathBuf::from("./estd.db"),
                sync: Synchronous::Full
            }
        );
        assert_eq!(c.max_body, 65_536);
        assert_eq!(c.est_group, "est-users");
        Ok(())
    });
}

#[test]
fn postgres_urls_and_their_passwords() {
    Jail::expect_with(|jail| {
        jail.set_env(
            "ESTD_DATABASE_URL",
            "postgres://estd:s3cret@db.example:5432/estd",
        );
        jail.set_env("ESTD_DATABASE_MAX_CONNECTIONS", "32");
        jail.set_env("ESTD_DATABASE_ACQUIRE_TIMEOUT_SECS", "3");
        jail.set_env("ESTD_JOBS_LEASE_SECS", "5");
        let c = load_in_jail(jail).unwrap();
        assert_eq!(
            c.database,
            Database::Postgres {
                url: "postgres://estd:s3cret@db.example:5432/estd".into(),
                max_connections: 32,
                acquire_timeout: Duration::from_secs(3),
            }
        );
        assert!(c.database.is_shared());
        assert_eq!(c.job_lease, Duration::from_secs(5));
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://estd:***@db.example:5432/estd"));
        jail.set_env("ESTD_DATABASE_URL", "mysql://root:hunter2@x/db");
        let e = load_in_jail(jail).unwrap_err().to_string();
        assert!(e.contains("database.url") && !e.contains("hunter2"), "{e}");
        jail.set_env("ESTD_DATABASE_URL", "postgresql://x@y/z");
        jail.set_env("ESTD_DATABASE_MAX_CONNECTIONS", "0");
        let e = load_in_jail(jail).unwrap_err().to_string();
        assert!(e.contains("database.max_connections"), "{e}");
        Ok(())
    });
    assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
    assert_eq!(redact_url("postgres://u:p@ss@h/d"), "postgres://u:***@h/d");
}

#[test]
fn file_then_environment() {
    Jail::expect_with(|jail| {
        jail.create_dir("conf")?;
        jail.create_file(
            "conf/estd.toml",
            "listen = \"127.0.0.1:9000\"\n[limits]\nmax_body_bytes = 2048\n[database]\nsynchronous = \"normal\"\n",
        )?;
        jail.set_env("ESTD_DATA_DIR", "/var/lib/estd");
        jail.set_env("ESTD_LIMITS_MAX_BODY_BYTES", "4096");
        jail.set_env("ESTD_CONFIG", "ignored.toml");
        let c = load_in_jail(jail).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.max_body, 4096);
        assert_eq!(c.ca_dir, PathBuf::from("/var/lib/estd/certs"));
        assert_eq!(
            c.database,
            Database::Sqlite {
                path: PathBuf::from("/var/lib/estd/estd.db"),
                sync: Synchronous::Normal
            }
        );
        jail.set_env("ESTD_LISTEN", "127.0.0.1:9443");
        assert_eq!(load_in_jail(jail).unwrap().listen.port(), 9443);
        // the plain-HTTP listeners: on by default, "" turns them off
        assert_eq!(c.metrics_listen.map(|a| a.port()), Some(9187));
        jail.set_env("ESTD_REVOCATION_LISTEN", "");
        jail.set_env("ESTD_METRICS_LISTEN", "");
        jail.set_env("ESTD_REVOCATION_BASE_URL", "http://pki.example.com:8080/");
        let c = load_in_jail(jail).unwrap();
        assert_eq!((c.revocation_listen, c.metrics_listen), (None, None));
        assert_eq!(
            c.revocation_base_url.as_deref(),
            Some("http://pki.example.com:8080")
        );
        Ok(())
    });
}

#[test]
fn bad_settings_name_the_key_and_reason() {
    for (var, value, needle) in [
        (
            "ESTD_LISTEN",
            "localhost",
            "listen: \"localhost\" is not a socket address",
        ),
        (
            "ESTD_CA_KEY_TYPE",
            "dsa",
            "ca.key_type: \"dsa\" is not one of",
        ),
        (
            "ESTD_LIMITS_MAX_BODY_BYTES",
            "12",
            "limits.max_body_bytes: 12 is out of range",
        ),
        ("ESTD_LIMITS_MAX_BODY_BYTES", "lots", "max_body_bytes"),
        ("ESTD_DATABASE_URL", "mysql://x", "database.url"),
        ("ESTD_LOG_FORMAT", "xml", "log.format"),
        ("ESTD_COLOUR", "blue", "colour"),
        (
            "ESTD_REVOCATION_LISTEN",
            "everywhere",
            "revocation.listen: \"everywhere\" is not an address:port",
        ),
        (
            "ESTD_REVOCATION_BASE_URL",
            "ldap://x",
            "revocation.base_url: \"ldap://x\" is not an http:// URL",
        ),
        (
            "ESTD_REVOCATION_CRL_VALIDITY_HOURS",
            "0",
            "revocation.crl_validity_hours: 0 is out of range",
        ),
        (
            "ESTD_REVOCATION_OCSP_VALIDITY_MINUTES",
            "99999",
            "revocation.ocsp_validity_minutes: 99999 is out of range",
        ),
        ("ESTD_METRICS_LISTEN", ":9", "metrics.listen"),
    ] {
        Jail::expect_with(|jail| {
            jail.set_env(var, value);
            let err = load_in_jail(jail).unwrap_err().to_string();
            assert!(
                err.to_lowercase().contains(&needle.to_lowercase()),
                "{var}={value}: {err:?} should contain {needle:?}"
            );
            Ok(())
        });
    }
}

#[test]
fn a_named_file_must_exist() {
    let err = Config::load(Some(Path::new("/nonexistent/estd.toml"))).unwrap_err();
    assert!(
        err.to_string()
            .contains("/nonexistent/estd.toml: no such file")
    );
}

#[test]
fn a_ca_key_in_a_token() {
    Jail::expect_with(|jail| {
        // the module and the PIN's source are needed; the PIN itself is not a setting
        jail.set_env("ESTD_CA_KEY", "pkcs11:token=estd;object=issuing-ca");
        let e = load_in_jail(jail).unwrap_err().to_string();
        assert!(e.contains("ca.pkcs11_module:"), "{e}");
        jail.set_env("ESTD_CA_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so");
        let e = load_in_jail(jail).unwrap_err().to_string();
        assert!(e.contains("ESTD_CA_PIN"), "{e}");
        jail.set_env("ESTD_CA_PIN", "1234");
        let c = load_in_jail(jail).unwrap();
        assert!(
            !format!("{c:?}").contains("1234"),
            "the PIN is in the configuration"
        );
        let t = c.ca_token.expect("a token");
        assert_eq!(t.uri.object.as_deref(), Some("issuing-ca"));
        assert_eq!(t.pin().unwrap().as_str(), "1234");
        // a PIN written into the URI is refused, and not echoed
        jail.set_env("ESTD_CA_KEY", "pkcs11:object=issuing-ca?pin-value=4321");
        let e = load_in_jail(jail).unwrap_err().to_string();
        assert!(e.contains("pin-value") && !e.contains("4321"), "{e}");
        // the OCSP and sealing keys: in the same token (its attributes when none are
        // given), other objects, never another token or module
        jail.set_env("ESTD_CA_KEY", "pkcs11:token=estd;object=issuing-ca");
        jail.set_env("ESTD_CA_OCSP_KEY", "pkcs11:object=ocsp");
        jail.set_env("ESTD_CA_SEAL_KEY", "pkcs11:token=estd;object=seal");
        let t = load_in_jail(jail).unwrap().ca_token.expect("a token");
        let ocsp = t.ocsp_key.expect("the OCSP key");
        assert_eq!(
            (ocsp.token.as_deref(), ocsp.object.as_deref()),
            (Some("estd"), Some("ocsp"))
        );
        assert_eq!(
            t.seal_key.expect("the seal key").object.as_deref(),
            Some("seal")
        );
        for (key, value, want) in [
            (
                "ESTD_CA_OCSP_KEY",
                "pkcs11:token=other;object=ocsp",
                "the token ca.key is in",
            ),
            (
                "ESTD_CA_OCSP_KEY",
                "pkcs11:object=issuing-ca",
                "another object than ca.key",
            ),
            (
                "ESTD_CA_SEAL_KEY",
                "pkcs11:object=ocsp",
                "another object than ca.ocsp_key",
            ),
            (
                "ESTD_CA_SEAL_KEY",
                "pkcs11:object=s?module-path=/x.so",
                "module-path",
            ),
            ("ESTD_CA_SEAL_KEY", "jobs.key", "ca.seal_key:"),
        ] {
            jail.set_env("ESTD_CA_OCSP_KEY", "pkcs11:object=ocsp");
            jail.set_env("ESTD_CA_SEAL_KEY", "pkcs11:object=seal");
            jail.set_env(key, value);
            let e = load_in_jail(jail).unwrap_err().to_string();
            assert!(e.contains(want), "{key}={value}: {e}");
        }
        jail.set_env("ESTD_CA_OCSP_KEY", "");
        jail.set_env("ESTD_CA_SEAL_KEY", "");
        // sessions: 16 at least by default, as many as asked, not thousands
        let t = load_in_jail(jail).unwrap().ca_token.expect("a token");
        assert!(t.sessions >= 16, "{}", t.sessions);
        jail.set_env("ESTD_CA_PKCS11_SESSIONS", "3");
        assert_eq!(
            load_in_jail(jail)
                .unwrap()
                .ca_token
                .expect("a token")
                .sessions,
            3
        );
        jail.set_env("ESTD_CA_PKCS11_SESSIONS", "100000");
        let e = load_in_jail(jail).unwrap_err().to_string();
        assert!(e.contains("ca.pkcs11_sessions:"), "{e}");
        jail.set_env("ESTD_CA_PKCS11_SESSIONS", "0");
        // a file path is not a URI
        jail.set_env("ESTD_CA_KEY", "certs/issuing-ca.key");
        assert!(
            load_in_jail(jail)
                .unwrap_err()
                .to_string()
                .contains("ca.key:")
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        // the module without a token key is a mistake, not ignored
        jail.set_env("ESTD_CA_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so");
        let e = load_in_jail(jail).unwrap_err().to_string();
        assert!(e.contains("ca.pkcs11_module:"), "{e}");
        jail.set_env("ESTD_CA_PKCS11_MODULE", "");
        jail.set_env("ESTD_CA_SEAL_KEY", "pkcs11:object=seal");
        let e = load_in_jail(jail).unwrap_err().to_string();
        assert!(e.contains("ca.seal_key:"), "{e}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        // the module and the PIN file from the URI's module-path and pin-source; a PIN
        // file others may read is refused
        use std::os::unix::fs::PermissionsExt;
        jail.create_file("pin", "5678\n")?;
        std::fs::set_permissions("pin", std::fs::Permissions::from_mode(0o644)).unwrap();
        jail.set_env(
            "ESTD_CA_KEY",
            "pkcs11:token=estd;object=ca?module-path=/usr/lib/x.so&pin-source=file:pin",
        );
        let c = load_in_jail(jail).unwrap();
        let t = c.ca_token.expect("a token");
        assert_eq!(t.module, PathBuf::from("/usr/lib/x.so"));
        let e = t.pin().unwrap_err();
        assert!(e.contains("mode 644") && !e.contains("5678"), "{e}");
        std::fs::set_permissions("pin", std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(t.pin().unwrap().as_str(), "5678");
        Ok(())
    });
}
