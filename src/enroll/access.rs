//! Who is asking, and may they use this template: HTTP Basic (with the throttle and the
//! credential cache), TLS client certificates, template access rules.

use super::*;

impl EnrollService {
    /// May this principal use the template (its `allowed_groups`, est.group by default, and
    /// `allowed_users`)? Every path checks it: EST, the JSON API, the portal, bulk jobs, test
    /// certificates.
    pub fn check_access(
        &self,
        principal: &Principal,
        template: &Template,
    ) -> Result<(), EnrollError> {
        if template.may_use(&principal.name, &principal.groups, &self.est_group) {
            return Ok(());
        }
        // a SCEP challenge or a trusted IDevID is the permission for its template; a
        // certificate it obtained renews under that template
        match &principal.method {
            AuthMethod::Code { template: t, .. } | AuthMethod::DeviceCert { template: t, .. }
                if *t == template.name =>
            {
                return Ok(());
            }
            AuthMethod::ClientCert { template: t, .. }
                if *t == template.name && auth::is_device_requester(&principal.name) =>
            {
                return Ok(());
            }
            _ => {}
        }
        tracing::warn!(
            principal = %principal.name,
            template = %template.name,
            "refused: the template's access rules do not include this user"
        );
        Err(EnrollError::TemplateDenied {
            user: principal.name.clone(),
            template: template.name.clone(),
        })
    }

    /// Is this principal in an admin group (may request certificates for others)?
    pub fn is_admin(&self, p: &Principal) -> bool {
        self.admin_groups.iter().any(|g| p.in_group(g))
    }

    /// Checks a user name and password against the store (argon2 off the async executor).
    /// Unknown users cost as much time as wrong passwords.
    /// Throttled (see `auth::throttle`): an address, or a user at an address, with repeated
    /// failures gets one password check per interval; credentials the cache remembers are
    /// no password check. `peer` is the client's address.
    pub async fn authenticate_basic(
        &self,
        user: &str,
        password: &str,
        peer: &str,
    ) -> Result<Principal, EnrollError> {
        let record = self.user_for_basic(user).await?;
        if let (Some(r), Some(cache)) = (&record, &self.credentials)
            && !r.disabled
            && cache.hit(user, password, &r.password_hash)
        {
            return Ok(Principal {
                name: r.name.clone(),
                groups: r.groups.clone(),
                method: AuthMethod::Basic,
            });
        }
        if let Some(wait) = self.throttle.take_check(user, peer) {
            tracing::warn!(
                user = %crate::model::printable(user),
                %peer,
                retry_after = wait,
                "slowed: repeated failed log-ins from this address (or for this user from it)"
            );
            return Err(EnrollError::Throttled { retry_after: wait });
        }
        let hash = record.as_ref().map_or_else(
            || auth::dummy_hash().to_string(),
            |r| r.password_hash.clone(),
        );
        let ok = self.passwords.verify(user, password, &hash).await?;
        if ok && let (Some(r), Some(cache)) = (&record, &self.credentials) {
            cache.remember(user, password, &r.password_hash);
        }
        match record {
            Some(r) if ok && r.disabled => Err(EnrollError::Unauthorized(format!(
                "the account of user {:?} is disabled",
                r.name
            ))),
            Some(r) if ok => Ok(Principal {
                name: r.name,
                groups: r.groups,
                method: AuthMethod::Basic,
            }),
            _ => {
                self.throttle.failed(user, peer);
                Err(EnrollError::Unauthorized(format!(
                    "the user name or password is wrong (user {:?})",
                    user.chars().take(64).collect::<String>()
                )))
            }
        }
    }

    /// Checks a secret against an argon2 PHC hash that is not a user's (a template's hashed
    /// SCEP challenge) within the bound on password checks; `who` keys the credential cache,
    /// which remembers a verified secret as for Basic log-ins.
    pub async fn verify_secret(
        &self,
        who: &str,
        secret: &str,
        phc: &str,
    ) -> Result<bool, EnrollError> {
        if let Some(cache) = &self.credentials
            && cache.hit(who, secret, phc)
        {
            return Ok(true);
        }
        let ok = self.passwords.verify(who, secret, phc).await?;
        if ok && let Some(cache) = &self.credentials {
            cache.remember(who, secret, phc);
        }
        Ok(ok)
    }

    /// The user's record, from the last second's reads when the credential cache is on.
    async fn user_for_basic(&self, user: &str) -> Result<Option<UserRecord>, EnrollError> {
        if self.credentials.is_none() {
            return Ok(self.store.find_user(user).await?);
        }
        if let Ok(map) = self.recent_users.lock()
            && let Some((r, at)) = map.get(user)
            && at.elapsed() < USER_FRESH
        {
            return Ok(Some(r.clone()));
        }
        let record = self.store.find_user(user).await?;
        if let (Some(r), Ok(mut map)) = (&record, self.recent_users.lock()) {
            if map.len() >= RECENT_USERS_MAX {
                map.clear();
            }
            map.insert(user.to_string(), (r.clone(), Instant::now()));
        }
        Ok(record)
    }

    /// Forgets a user's cached record (this process changed the password).
    pub fn forget_user(&self, user: &str) {
        if let Ok(mut map) = self.recent_users.lock() {
            map.remove(user);
        }
    }

    /// The user a bearer token names (401 for any token the identity provider's keys and
    /// `[tokens]` do not accept; 401 too where no `[tokens]` is configured). The token is
    /// never logged.
    pub fn authenticate_bearer(&self, token: &str) -> Result<Principal, EnrollError> {
        let Some(v) = &self.tokens else {
            return Err(EnrollError::Unauthorized(
                "this server takes no bearer tokens (no [tokens] is configured)".into(),
            ));
        };
        match v.verify(token) {
            Ok(c) => Ok(Principal {
                name: auth::token_principal(&c.user),
                groups: c.groups,
                method: AuthMethod::Bearer,
            }),
            Err(e) => {
                tracing::warn!(reason = %e, "refused: bearer token");
                Err(EnrollError::Unauthorized(e.to_string()))
            }
        }
    }

    /// The principal behind a TLS client certificate this CA issued: the user who requested it.
    pub async fn authenticate_certificate(
        &self,
        cert_der: &[u8],
    ) -> Result<Principal, EnrollError> {
        let serial = serial_of(cert_der).map_err(|e| {
            EnrollError::Unauthorized(format!("unreadable client certificate: {e}"))
        })?;
        // refusals name the certificate's subject (and the audit row's user is its owner,
        // as for every renewal)
        let subject = subject_of(cert_der).unwrap_or_default();
        // the very certificate recorded, not one of another CA that shares its serial (the TLS
        // layer checks the chain; SCEP's signer comes inside the message)
        let record = self
            .store
            .find_certificate(&serial)
            .await?
            .filter(|r| r.der == cert_der)
            .ok_or_else(|| {
                EnrollError::Unauthorized(format!(
                    "the client certificate {subject} (serial {serial}) was not issued by this server"
                ))
            })?;
        // the TLS layer checks dates for chains to estd's roots; a chain it accepted by a
        // template's vendor CA may end in an expired certificate of estd's (an operator who
        // listed a root above estd's CA): a renewal is never by an expired certificate
        if let Some(end) = not_after(cert_der)
            && end < std::time::SystemTime::now()
        {
            return Err(EnrollError::Unauthorized(format!(
                "the client certificate {subject} (serial {serial}) expired at {}; it cannot be renewed",
                crate::model::timestamp(end)
            )));
        }
        if let Some(r) = self.store.find_revocation(&serial).await? {
            return Err(EnrollError::Revoked(format!(
                "the client certificate {subject} (serial {serial}) was revoked at {} ({}); it cannot be renewed",
                r.revoked_at,
                crate::revocation::reason_name(r.reason)
            )));
        }
        if auth::is_device_requester(&record.requester) {
            return Ok(Principal {
                name: record.requester,
                groups: Vec::new(),
                method: AuthMethod::ClientCert {
                    serial,
                    template: record.template,
                },
            });
        }
        let user = self
            .store
            .find_user(&record.requester)
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(|| {
                EnrollError::Unauthorized(format!(
                    "the user {} who requested the client certificate {subject} no longer exists or is disabled",
                    record.requester
                ))
            })?;
        // The certificate is the identity: it renews itself under its template and gives no
        // other right. Its owner's account must still exist and may still use the template
        // (removing either stops the renewals), but the owner's admin rights do not come
        // along (`enroll` treats a renewal as no admin).
        Ok(Principal {
            name: user.name,
            groups: user.groups,
            method: AuthMethod::ClientCert {
                serial,
                template: record.template,
            },
        })
    }
}

/// A certificate's notAfter.
fn not_after(cert_der: &[u8]) -> Option<std::time::SystemTime> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    Some(cert.tbs_certificate().validity().not_after.to_system_time())
}
