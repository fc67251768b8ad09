//! One store test suite, run against both databases: SQLite (a file, as `estd serve` uses
//! it) and a real PostgreSQL server started for the test. Every scenario gets an empty
//! database of its own.

mod common;

use std::sync::Arc;
use std::time::SystemTime;

use common::pg::Pg;
use estd::store::{
    AuditEvent, CertFilter, CertRecord, CertStatus, DeviceRecord, DeviceState, JobClaim, JobRecord,
    PendingRecord, PendingState, PgStore, RevocationRecord, SessionRecord, SqliteStore, Store,
    StoreError, Synchronous, timestamp,
};

fn audit(op: &str) -> AuditEvent {
    AuditEvent {
        at: timestamp(SystemTime::now()),
        request_id: "r1".into(),
        operation: op.into(),
        label: None,
        principal: Some("alice".into()),
        peer: "127.0.0.1:1".into(),
        outcome: "ok".into(),
        status: 200,
        reason: None,
        serial: None,
    }
}

fn cert(serial: &str) -> CertRecord {
    CertRecord {
        serial: serial.into(),
        subject: "CN=a".into(),
        san: String::new(),
        template: "default".into(),
        requester: "alice".into(),
        operation: "simpleenroll".into(),
        not_before: "x".into(),
        not_after: "y".into(),
        issued_at: "z".into(),
        der: vec![1, 2, 3],
        description: "till 3".into(),
        issuer: "local".into(),
    }
}

fn job(owner: &str) -> JobRecord {
    JobRecord {
        id: 0,
        owner: owner.into(),
        template: "eap-tls".into(),
        description: "d".into(),
        format: "pem".into(),
        password_sealed: Some(vec![9; 40]),
        state: "queued".into(),
        total: 0,
        created_at: timestamp(SystemTime::now()),
        finished_at: None,
        confirmed_at: None,
    }
}

fn rows(n: i64) -> Vec<(i64, String, String)> {
    (2..2 + n)
        .map(|n| (n, format!("dev{n}"), "11-22-33-44-55-66".into()))
        .collect()
}

async fn users_and_groups(s: Arc<dyn Store>) {
    assert_eq!(s.user_count().await.unwrap(), 0);
    s.add_user("alice", "h1", &["est-users".into(), "Super Admin".into()])
        .await
        .unwrap();
    let err = s.add_user("alice", "h2", &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(_)), "{err}");
    // one name regardless of case
    for other in ["Alice", "ALICE", "aLiCe"] {
        let err = s.add_user(other, "h2", &[]).await.unwrap_err();
        assert!(matches!(err, StoreError::Duplicate(_)), "{other}: {err}");
    }
    assert!(
        s.find_user("Alice").await.unwrap().is_none(),
        "look-ups stay exact"
    );
    let u = s.find_user("alice").await.unwrap().unwrap();
    assert_eq!(
        u.groups,
        vec!["Super Admin".to_string(), "est-users".to_string()]
    );
    assert!(s.set_password("alice", "h3").await.unwrap());
    assert!(!s.set_password("bob", "h3").await.unwrap());
    assert_eq!(
        s.find_user("alice").await.unwrap().unwrap().password_hash,
        "h3"
    );
    assert!(s.find_user("bob").await.unwrap().is_none());
    s.add_user("bob", "hb", &["g".into(), "g".into()])
        .await
        .unwrap();
    let names: Vec<String> = s
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, vec!["alice".to_string(), "bob".to_string()]);
}

async fn issuance_and_audit(s: Arc<dyn Store>) {
    s.record_issuance(&cert("01"), &audit("simpleenroll"))
        .await
        .unwrap();
    let err = s
        .record_issuance(&cert("01"), &audit("simpleenroll"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(_)));
    // the failed transaction wrote no audit row
    assert_eq!(s.recent_audit(10).await.unwrap().len(), 1);
    assert_eq!(s.certificate_count().await.unwrap(), 1);
    let c = s.find_certificate("01").await.unwrap().unwrap();
    assert_eq!(c, cert("01"));
    s.record_audit(&audit("cacerts")).await.unwrap();
    assert_eq!(s.recent_audit(10).await.unwrap()[0].operation, "cacerts");
    let mut failed = audit("simpleenroll");
    failed.status = 403;
    failed.principal = Some("bob".into());
    failed.reason = Some("Invalid MAC address".into());
    s.record_audit(&failed).await.unwrap();
    assert_eq!(
        s.find_audit("1970", None, false, 100).await.unwrap().len(),
        3
    );
    let bad = s.find_audit("1970", None, true, 100).await.unwrap();
    assert_eq!(bad, vec![failed.clone()]);
    assert_eq!(
        s.find_audit("1970", Some("alice"), false, 100)
            .await
            .unwrap()
            .len(),
        2
    );
    // the latest N, oldest first
    let last2 = s.find_audit("1970", None, false, 2).await.unwrap();
    assert_eq!(
        (last2[0].operation.as_str(), last2[1].status),
        ("cacerts", 403)
    );
    assert!(
        s.find_audit("9999", None, false, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn job_lifecycle(s: Arc<dyn Store>) {
    let rows = rows(3);
    let id = s.create_job(&job("joe"), &rows).await.unwrap();
    assert_eq!(s.open_job_of("joe").await.unwrap().unwrap().total, 3);
    let a = s.claim_job_item("i1/0/0").await.unwrap().unwrap();
    assert_eq!(
        (a.row_number, a.state.as_str(), a.claim.as_deref()),
        (2, "running", Some("i1/0/0"))
    );
    let ca = JobClaim {
        item_id: a.id,
        token: "i1/0/0".into(),
    };
    assert_eq!(s.get_job(id).await.unwrap().unwrap().state, "running");
    let wrong = JobClaim {
        item_id: a.id,
        token: "i2/0/0".into(),
    };
    assert!(
        !s.record_job_issuance(&wrong, &cert("a0"), &audit("bulk"), b"x")
            .await
            .unwrap(),
        "only the holder of the claim records"
    );
    assert!(
        s.record_job_issuance(&ca, &cert("a1"), &audit("bulk"), b"sealed")
            .await
            .unwrap()
    );
    assert!(
        !s.record_job_issuance(&ca, &cert("a2"), &audit("bulk"), b"sealed")
            .await
            .unwrap(),
        "once"
    );
    let b = s.claim_job_item("i1/0/1").await.unwrap().unwrap();
    let cb = JobClaim {
        item_id: b.id,
        token: "i1/0/1".into(),
    };
    // not stale yet
    assert_eq!(s.requeue_stale_items("1970").await.unwrap(), 0);
    // its worker is presumed dead: the row goes to another instance
    let later = timestamp(SystemTime::now() + std::time::Duration::from_secs(1));
    assert_eq!(s.requeue_stale_items(&later).await.unwrap(), 1);
    let b2 = s.claim_job_item("i2/0/0").await.unwrap().unwrap();
    assert_eq!(b.id, b2.id);
    assert!(
        !s.record_job_issuance(&cb, &cert("b0"), &audit("bulk"), b"x")
            .await
            .unwrap(),
        "the first claim no longer counts"
    );
    s.fail_job_item(&cb, "late").await.unwrap();
    assert_eq!(
        s.job_items(id).await.unwrap()[1].state,
        "running",
        "nor can it fail the row"
    );
    let cb2 = JobClaim {
        item_id: b2.id,
        token: "i2/0/0".into(),
    };
    // cancel while b is running: its certificate is not recorded
    assert!(s.cancel_job(id).await.unwrap());
    assert!(!s.cancel_job(id).await.unwrap());
    assert!(
        !s.record_job_issuance(&cb2, &cert("b1"), &audit("bulk"), b"x")
            .await
            .unwrap()
    );
    assert!(s.claim_job_item("i1/0/2").await.unwrap().is_none());
    let c = s.job_counts(id).await.unwrap();
    assert_eq!((c.done, c.cancelled, c.pending), (1, 2, 0));
    assert!(s.find_certificate("b1").await.unwrap().is_none());
    // confirm: keys and password gone, owner free
    assert!(s.confirm_job(id).await.unwrap());
    assert!(
        s.job_items(id)
            .await
            .unwrap()
            .iter()
            .all(|i| i.key_sealed.is_none())
    );
    assert!(
        s.get_job(id)
            .await
            .unwrap()
            .unwrap()
            .password_sealed
            .is_none()
    );
    assert!(s.open_job_of("joe").await.unwrap().is_none());
    // a job whose only row fails ends `failed`
    let id2 = s.create_job(&job("ann"), &rows[..1]).await.unwrap();
    let i = s.claim_job_item("i1/1/0").await.unwrap().unwrap();
    assert!(!s.finish_job_if_done(id2).await.unwrap());
    let ci = JobClaim {
        item_id: i.id,
        token: "i1/1/0".into(),
    };
    s.fail_job_item(&ci, "Invalid MAC address").await.unwrap();
    assert!(s.finish_job_if_done(id2).await.unwrap());
    assert_eq!(s.get_job(id2).await.unwrap().unwrap().state, "failed");
    assert!(s.confirm_job(id2).await.unwrap());
    // one done, one failed: `completed`
    let id3 = s.create_job(&job("eve"), &rows[..2]).await.unwrap();
    let x = s.claim_job_item("i1/1/1").await.unwrap().unwrap();
    let y = s.claim_job_item("i1/1/2").await.unwrap().unwrap();
    let cx = JobClaim {
        item_id: x.id,
        token: "i1/1/1".into(),
    };
    let cy = JobClaim {
        item_id: y.id,
        token: "i1/1/2".into(),
    };
    assert!(
        s.record_job_issuance(&cx, &cert("x1"), &audit("bulk"), b"k")
            .await
            .unwrap()
    );
    s.fail_job_item(&cy, "CA server error").await.unwrap();
    assert!(s.finish_job_if_done(id3).await.unwrap());
    assert_eq!(s.get_job(id3).await.unwrap().unwrap().state, "completed");
    assert_eq!(
        s.job_items(id3).await.unwrap()[1].error.as_deref(),
        Some("CA server error")
    );
    // a job whose worker recorded its last row and died (or lost the database) before
    // ending it is ended by the sweep's finish_jobs_if_done; one with a row left is not
    s.confirm_job(id3).await.unwrap();
    let id4 = s.create_job(&job("kim"), &rows[..1]).await.unwrap();
    let z = s.claim_job_item("i1/1/3").await.unwrap().unwrap();
    let id5 = s.create_job(&job("lou"), &rows[..2]).await.unwrap();
    let w = s.claim_job_item("i1/1/4").await.unwrap().unwrap();
    assert_eq!((z.job_id, w.job_id), (id4, id5));
    for (item, token) in [(&z, "i1/1/3"), (&w, "i1/1/4")] {
        let c = JobClaim {
            item_id: item.id,
            token: token.into(),
        };
        assert!(
            s.record_job_issuance(&c, &cert(token), &audit("bulk"), b"k")
                .await
                .unwrap()
        );
    }
    assert_eq!(s.finish_jobs_if_done().await.unwrap(), 1);
    assert_eq!(s.get_job(id4).await.unwrap().unwrap().state, "completed");
    assert_eq!(s.get_job(id5).await.unwrap().unwrap().state, "running");
    assert_eq!(s.finish_jobs_if_done().await.unwrap(), 0);
}

/// Eight workers claim from one job at once: each row is claimed and recorded exactly once.
async fn concurrent_claims_take_each_row_once(s: Arc<dyn Store>) {
    let n = 60;
    let id = s.create_job(&job("joe"), &rows(n)).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut k = 0;
            loop {
                let token = format!("w{w}/{k}");
                k += 1;
                let Some(item) = s.claim_job_item(&token).await.unwrap() else {
                    return mine;
                };
                let claim = JobClaim {
                    item_id: item.id,
                    token,
                };
                let serial = format!("{:04}", item.row_number);
                assert!(
                    s.record_job_issuance(&claim, &cert(&serial), &audit("bulk"), b"k")
                        .await
                        .unwrap()
                );
                mine.push(item.id);
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (n as usize, n as usize));
    assert_eq!(s.certificate_count().await.unwrap(), n as u64);
    assert!(s.finish_job_if_done(id).await.unwrap());
    assert_eq!(s.job_counts(id).await.unwrap().done, n);
}

/// Many enrollments at once (SQLite commits them together): each gets its own answer, and
/// one duplicate serial among them fails alone.
async fn concurrent_issuance_with_one_duplicate(s: Arc<dyn Store>) {
    s.record_issuance(&cert("dup"), &audit("simpleenroll"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let serial = if i == 151 {
                "dup".to_string()
            } else {
                format!("s{i:03}")
            };
            let mut a = audit("simpleenroll");
            a.request_id = format!("r{i}");
            if i % 3 == 0 {
                s.record_audit(&a).await.map(|()| false)
            } else {
                s.record_issuance(&cert(&serial), &a).await.map(|()| true)
            }
        }));
    }
    let mut issued = 0;
    let mut duplicates = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(true) => issued += 1,
            Ok(false) => {}
            Err(StoreError::Duplicate(_)) => duplicates += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((issued, duplicates), (199, 1));
    assert_eq!(s.certificate_count().await.unwrap(), 200);
    // 1 + 100 audit-only + 199 issued; the duplicate's audit row is not written
    assert_eq!(
        s.find_audit("1970", None, false, 1000).await.unwrap().len(),
        300
    );
}

async fn sessions(s: Arc<dyn Store>) {
    let rec = |id: &str, user: &str, seen: &str| SessionRecord {
        id_hash: id.into(),
        user_name: user.into(),
        csrf: "c".into(),
        created_at: "2026-01-01T00:00:00.000000Z".into(),
        last_seen: seen.into(),
    };
    s.create_session(&rec("a", "joe", "2026-01-01T00:00:00.000000Z"))
        .await
        .unwrap();
    s.create_session(&rec("b", "joe", "2026-01-02T00:00:00.000000Z"))
        .await
        .unwrap();
    s.create_session(&rec("c", "ann", "2026-01-01T00:00:00.000000Z"))
        .await
        .unwrap();
    assert!(matches!(
        s.create_session(&rec("a", "x", "y")).await.unwrap_err(),
        StoreError::Duplicate(_)
    ));
    s.touch_session("c", "2026-01-03T00:00:00.000000Z")
        .await
        .unwrap();
    assert_eq!(
        s.get_session("c").await.unwrap().unwrap().last_seen,
        "2026-01-03T00:00:00.000000Z"
    );
    assert_eq!(
        s.delete_idle_sessions("2026-01-01T12:00:00.000000Z")
            .await
            .unwrap(),
        1
    );
    assert!(s.get_session("a").await.unwrap().is_none());
    assert_eq!(s.delete_user_sessions("joe").await.unwrap(), 1);
    s.delete_session("c").await.unwrap();
    assert!(s.get_session("c").await.unwrap().is_none());
}

async fn pending(s: Arc<dyn Store>) {
    let p = PendingRecord {
        id: 0,
        template: "manual".into(),
        requester: "joe".into(),
        key_fingerprint: "fp".into(),
        subject: "CN=joe".into(),
        san: String::new(),
        operation: "simpleenroll".into(),
        csr: vec![0x30, 0x00],
        state: PendingState::Pending,
        reason: None,
        created_at: timestamp(SystemTime::now()),
        decided_at: None,
        decided_by: None,
        serial: None,
    };
    let id = s.create_pending(&p).await.unwrap();
    let found = s
        .find_pending_by_key("manual", "fp")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, found.csr.clone()), (id, vec![0x30, 0x00]));
    assert_eq!(
        s.list_pending(Some(PendingState::Pending))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(s.decide_pending(id, true, "admin", None).await.unwrap());
    assert!(
        !s.decide_pending(id, false, "admin", Some("no"))
            .await
            .unwrap()
    );
    assert!(
        s.record_pending_issuance(id, &cert("p1"), &audit("simpleenroll"))
            .await
            .unwrap()
    );
    assert!(
        !s.record_pending_issuance(id, &cert("p2"), &audit("simpleenroll"))
            .await
            .unwrap(),
        "issued once"
    );
    let done = s.get_pending(id).await.unwrap().unwrap();
    assert_eq!(
        (
            done.state,
            done.serial.as_deref(),
            done.decided_by.as_deref()
        ),
        (PendingState::Issued, Some("p1"), Some("admin"))
    );
    assert_eq!(s.list_pending(None).await.unwrap().len(), 1);
}

/// Registration-authority mode: requests an upstream holds (claimed once per poll, issued
/// or rejected once), certificates recorded with their issuer, and revocations of upstream
/// certificates told apart from local ones.
async fn upstream(s: Arc<dyn Store>) {
    let now = timestamp(SystemTime::now());
    let p = PendingRecord {
        id: 0,
        template: "fwd".into(),
        requester: "joe".into(),
        key_fingerprint: "fp".into(),
        subject: "CN=joe".into(),
        san: String::new(),
        operation: "simpleenroll".into(),
        csr: vec![0x30, 0x00],
        state: PendingState::Upstream,
        reason: None,
        created_at: now.clone(),
        decided_at: None,
        decided_by: None,
        serial: None,
    };
    let due_at = "2000-01-01T00:00:00.000000Z";
    let held = s.hold_upstream(&p, "corp", due_at).await.unwrap();
    let other = s
        .hold_upstream(&p, "corp", "2999-01-01T00:00:00.000000Z")
        .await
        .unwrap();
    // only the due one, with its upstream and no attempt yet
    let due = s.due_upstream(&now, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (
            due[0].pending.id,
            due[0].upstream.as_str(),
            due[0].poll_attempts,
            due[0].pending.state
        ),
        (held, "corp", 0, PendingState::Upstream)
    );
    // a poll takes it once: a second claim with the same sighting loses
    let next = "2001-01-01T00:00:00.000000Z";
    assert!(s.claim_upstream_poll(held, due_at, next).await.unwrap());
    assert!(!s.claim_upstream_poll(held, due_at, next).await.unwrap());
    let row = s.upstream_pending(held).await.unwrap().unwrap();
    assert_eq!((row.next_poll_at.as_str(), row.poll_attempts), (next, 1));
    // a person cannot approve what the upstream holds, but may give up on it
    assert!(!s.decide_pending(held, true, "admin", None).await.unwrap());
    let third = s.hold_upstream(&p, "corp", due_at).await.unwrap();
    assert!(
        s.decide_pending(third, false, "admin", Some("gone"))
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_pending(third).await.unwrap().unwrap().state,
        PendingState::Rejected
    );
    // issued upstream: recorded with its issuer, once
    let mut c = cert("u1");
    c.issuer = "corp".into();
    assert!(
        s.record_upstream_issuance(held, &c, &audit("simpleenroll"))
            .await
            .unwrap()
    );
    assert!(
        !s.record_upstream_issuance(held, &cert("u2"), &audit("simpleenroll"))
            .await
            .unwrap()
    );
    assert_eq!(
        s.find_certificate("u1").await.unwrap().unwrap().issuer,
        "corp"
    );
    assert!(s.find_certificate("u2").await.unwrap().is_none());
    assert_eq!(
        s.get_pending(held).await.unwrap().unwrap().state,
        PendingState::Issued
    );
    assert!(s.upstream_pending(held).await.unwrap().is_none());
    // refused upstream: rejected with the reason, by the upstream
    assert!(
        s.reject_upstream(other, "no such device", &audit("simpleenroll"))
            .await
            .unwrap()
    );
    let r = s.get_pending(other).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.reason.as_deref(), r.decided_by.as_deref()),
        (
            PendingState::Rejected,
            Some("no such device"),
            Some("upstream corp")
        )
    );
    assert!(
        !s.reject_upstream(other, "again", &audit("simpleenroll"))
            .await
            .unwrap()
    );
    // an approved request the upstream then holds
    let mut m = p.clone();
    m.state = PendingState::Pending;
    let manual = s.create_pending(&m).await.unwrap();
    assert!(
        !s.approved_to_upstream(manual, "corp", next).await.unwrap(),
        "not approved yet"
    );
    assert!(s.decide_pending(manual, true, "admin", None).await.unwrap());
    assert!(s.approved_to_upstream(manual, "corp", next).await.unwrap());
    assert_eq!(
        s.get_pending(manual).await.unwrap().unwrap().state,
        PendingState::Upstream
    );
    // revocations say whose certificate it was; the count (the CRL's) is of local ones
    s.record_issuance(&cert("l1"), &audit("simpleenroll"))
        .await
        .unwrap();
    for serial in ["u1", "l1"] {
        let rev = RevocationRecord {
            serial: serial.into(),
            revoked_at: now.clone(),
            reason: 1,
            revoked_by: "admin".into(),
            key_fingerprint: format!("fp-{serial}"),
            issuer: String::new(),
        };
        assert!(s.revoke_certificate(&rev, &audit("revoke")).await.unwrap());
    }
    let all = s.revocations().await.unwrap();
    let issuers: Vec<(&str, &str)> = all
        .iter()
        .map(|r| (r.serial.as_str(), r.issuer.as_str()))
        .collect();
    assert_eq!(issuers.len(), 2);
    assert!(issuers.contains(&("u1", "corp")) && issuers.contains(&("l1", "local")));
    assert_eq!(
        s.find_revocation("u1").await.unwrap().unwrap().issuer,
        "corp"
    );
    assert_eq!(s.revocation_count().await.unwrap(), 1);
}

async fn revocations(s: Arc<dyn Store>) {
    // three certificates: alice's valid one, alice's expired one, bob's (to be revoked)
    let mut a = cert("a1");
    a.not_after = "2099-01-01T00:00:00.000000Z".into();
    a.subject = "CN=Router 1".into();
    a.san = "DNS:router-1.example".into();
    a.issued_at = "2026-01-01T00:00:00.000000Z".into();
    let mut old = cert("a2");
    old.not_after = "2020-01-01T00:00:00.000000Z".into();
    old.issued_at = "2019-01-01T00:00:00.000000Z".into();
    let mut b = cert("b1");
    b.requester = "bob".into();
    b.template = "eap-tls".into();
    b.not_after = "2099-01-01T00:00:00.000000Z".into();
    b.issued_at = "2026-02-01T00:00:00.000000Z".into();
    for c in [&a, &old, &b] {
        s.record_issuance(c, &audit("simpleenroll")).await.unwrap();
    }
    let rev = RevocationRecord {
        serial: "b1".into(),
        revoked_at: "2026-03-01T00:00:00.000000Z".into(),
        reason: 1,
        revoked_by: "admin".into(),
        key_fingerprint: "fp".into(),
        issuer: "local".into(),
    };
    assert!(s.revoke_certificate(&rev, &audit("revoke")).await.unwrap());
    // once only: the second is refused and writes no audit row
    let n = s.recent_audit(100).await.unwrap().len();
    assert!(!s.revoke_certificate(&rev, &audit("revoke")).await.unwrap());
    assert_eq!(s.recent_audit(100).await.unwrap().len(), n);
    assert_eq!(s.revocations().await.unwrap(), vec![rev.clone()]);
    assert_eq!(s.revocation_count().await.unwrap(), 1);
    assert_eq!(s.find_revocation("b1").await.unwrap(), Some(rev.clone()));
    assert_eq!(s.find_revocation("a1").await.unwrap(), None);

    let list = |f: CertFilter| {
        let s = s.clone();
        async move {
            s.list_certificates(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|(c, r)| (c.serial, r.map(|r| r.reason)))
                .collect::<Vec<_>>()
        }
    };
    let all = CertFilter {
        now: "2026-06-01T00:00:00.000000Z".into(),
        limit: 10,
        ..CertFilter::default()
    };
    // newest first, the revocation joined
    assert_eq!(
        list(all.clone()).await,
        vec![
            ("b1".into(), Some(1)),
            ("a1".into(), None),
            ("a2".into(), None)
        ]
    );
    let with = |f: fn(&mut CertFilter)| {
        let mut c = all.clone();
        f(&mut c);
        c
    };
    assert_eq!(
        list(with(|f| f.status = Some(CertStatus::Revoked))).await,
        vec![("b1".into(), Some(1))]
    );
    assert_eq!(
        list(with(|f| f.status = Some(CertStatus::Valid))).await,
        vec![("a1".into(), None)]
    );
    assert_eq!(
        list(with(|f| f.status = Some(CertStatus::Expired))).await,
        vec![("a2".into(), None)]
    );
    assert_eq!(
        list(with(|f| f.requester = Some("bob".into()))).await.len(),
        1
    );
    assert_eq!(
        list(with(|f| f.template = Some("eap-tls".into())))
            .await
            .len(),
        1
    );
    assert_eq!(
        list(with(|f| f.text = Some("router".into()))).await,
        vec![("a1".into(), None)]
    );
    assert_eq!(
        list(with(|f| f.text = Some("ROUTER-1.EX".into())))
            .await
            .len(),
        1
    );
    // LIKE wildcards in the search are literal
    assert!(list(with(|f| f.text = Some("%".into()))).await.is_empty());
    assert!(list(with(|f| f.text = Some("_".into()))).await.is_empty());
    assert_eq!(list(with(|f| f.limit = 1)).await.len(), 1);
    s.ping().await.unwrap();
    assert!(s.job_states().await.unwrap().is_empty());
}

/// SCEP: challenges (found by hash, used once, released only by their transaction,
/// listed, withdrawn while unused) and transactions (one per template and transactionID,
/// replaced in one write).
async fn scep(s: Arc<dyn Store>) {
    use estd::store::{ChallengeRecord, TransactionRecord};
    let now = timestamp(SystemTime::now());
    let later = timestamp(SystemTime::now() + std::time::Duration::from_secs(3600));
    let c = |hash: &str, expires: &str| ChallengeRecord {
        id: 0,
        template: "scep".into(),
        secret_hash: hash.into(),
        cn: Some("dev-1".into()),
        san: None,
        created_by: "admin".into(),
        created_at: now.clone(),
        expires_at: expires.into(),
        used_at: None,
        used_by: None,
    };
    let a = s.create_challenge(&c("h1", &later)).await.unwrap();
    let b = s.create_challenge(&c("h2", &now)).await.unwrap();
    assert!(matches!(
        s.create_challenge(&c("h1", &later)).await,
        Err(StoreError::Duplicate(_))
    ));
    let found = s.find_challenge("h1").await.unwrap().unwrap();
    assert_eq!((found.id, found.cn.as_deref()), (a, Some("dev-1")));
    assert!(s.find_challenge("nope").await.unwrap().is_none());
    // open: unused and unexpired (b expires now)
    let open = s.list_challenges(&now, true, 10).await.unwrap();
    assert_eq!(open.iter().map(|c| c.id).collect::<Vec<_>>(), vec![a]);
    assert_eq!(s.list_challenges(&now, false, 10).await.unwrap().len(), 2);
    assert!(s.use_challenge(a, &now, "tx1").await.unwrap());
    assert!(!s.use_challenge(a, &now, "tx2").await.unwrap(), "used once");
    assert!(
        !s.release_challenge(a, "tx2").await.unwrap(),
        "only by its user"
    );
    assert!(!s.revoke_challenge(a).await.unwrap(), "a used one stays");
    assert!(s.release_challenge(a, "tx1").await.unwrap());
    assert!(
        s.find_challenge("h1")
            .await
            .unwrap()
            .unwrap()
            .used_at
            .is_none()
    );
    assert!(s.revoke_challenge(b).await.unwrap());
    assert!(s.find_challenge("h2").await.unwrap().is_none());

    let t = TransactionRecord {
        template: "scep".into(),
        transaction_id: "tx1".into(),
        key_fingerprint: "k1".into(),
        pending_id: None,
        serial: None,
        created_at: now.clone(),
    };
    s.save_transaction(&t).await.unwrap();
    let other = TransactionRecord {
        template: "other".into(),
        ..t.clone()
    };
    s.save_transaction(&other).await.unwrap();
    s.save_transaction(&TransactionRecord {
        pending_id: Some(7),
        ..t.clone()
    })
    .await
    .unwrap();
    let got = s.find_transaction("scep", "tx1").await.unwrap().unwrap();
    assert_eq!((got.pending_id, got.serial), (Some(7), None));
    // replaced: another key, what it came to
    s.save_transaction(&TransactionRecord {
        key_fingerprint: "k2".into(),
        serial: Some("0a".into()),
        ..t.clone()
    })
    .await
    .unwrap();
    let got = s.find_transaction("scep", "tx1").await.unwrap().unwrap();
    assert_eq!(
        (
            got.key_fingerprint.as_str(),
            got.pending_id,
            got.serial.as_deref()
        ),
        ("k2", None, Some("0a"))
    );
    assert_eq!(
        s.find_transaction("other", "tx1")
            .await
            .unwrap()
            .unwrap()
            .key_fingerprint,
        "k1"
    );
    assert!(s.find_transaction("scep", "tx9").await.unwrap().is_none());

    // retention: what was used or expired, and transactions started, before the cut go
    let long_ago = timestamp(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400));
    let used_long_ago = s.create_challenge(&c("h-old-used", &later)).await.unwrap();
    assert!(
        s.use_challenge(used_long_ago, &long_ago, "tx-old")
            .await
            .unwrap()
    );
    s.create_challenge(&c("h-old-expired", &long_ago))
        .await
        .unwrap();
    s.save_transaction(&TransactionRecord {
        transaction_id: "tx-old".into(),
        created_at: long_ago.clone(),
        ..t.clone()
    })
    .await
    .unwrap();
    let cut = timestamp(SystemTime::now() - std::time::Duration::from_secs(86_400));
    assert_eq!(s.purge_scep(&cut, &cut).await.unwrap(), (2, 1));
    assert!(s.find_challenge("h-old-used").await.unwrap().is_none());
    assert!(s.find_challenge("h-old-expired").await.unwrap().is_none());
    assert!(
        s.find_challenge("h1").await.unwrap().is_some(),
        "open: kept"
    );
    assert!(
        s.find_transaction("scep", "tx-old")
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.find_transaction("scep", "tx1").await.unwrap().is_some());
    // the service's limits: nothing of today goes
    assert_eq!(
        estd::service::scep::retention::purge(s.as_ref(), SystemTime::now())
            .await
            .unwrap(),
        (0, 0)
    );
}

/// Device lists: written in one transaction (a second write replaces the entry), found,
/// listed by template, removed once.
async fn devices(s: Arc<dyn Store>) {
    let d = |t: &str, serial: &str, state| DeviceRecord {
        template: t.into(),
        serial: serial.into(),
        state,
        note: Some("n".into()),
        added_by: "admin".into(),
        added_at: timestamp(SystemTime::now()),
    };
    let n = s
        .put_devices(&[
            d("zt", "SN-2", DeviceState::Allow),
            d("zt", "SN-1", DeviceState::Allow),
            d("other", "SN-1", DeviceState::Deny),
        ])
        .await
        .unwrap();
    assert_eq!(n, 3);
    s.put_devices(&[d("zt", "SN-2", DeviceState::Deny)])
        .await
        .unwrap();
    assert_eq!(
        s.find_device("zt", "SN-2").await.unwrap().map(|r| r.state),
        Some(DeviceState::Deny)
    );
    assert_eq!(s.find_device("zt", "SN-9").await.unwrap(), None);
    let zt: Vec<String> = s
        .list_devices(Some("zt"), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.serial)
        .collect();
    assert_eq!(zt, vec!["SN-1", "SN-2"]);
    assert_eq!(s.list_devices(None, 100).await.unwrap().len(), 3);
    assert_eq!(s.list_devices(None, 2).await.unwrap().len(), 2);
    assert!(s.remove_device("zt", "SN-1").await.unwrap());
    assert!(!s.remove_device("zt", "SN-1").await.unwrap());
    assert_eq!(
        s.find_device("other", "SN-1")
            .await
            .unwrap()
            .map(|r| r.state),
        Some(DeviceState::Deny)
    );
}

/// The scenarios, each on an empty store that `fresh` makes.
async fn suite<F, Fut>(fresh: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Store>>,
{
    users_and_groups(fresh("users").await).await;
    issuance_and_audit(fresh("issuance").await).await;
    job_lifecycle(fresh("jobs").await).await;
    concurrent_claims_take_each_row_once(fresh("claims").await).await;
    concurrent_issuance_with_one_duplicate(fresh("groupcommit").await).await;
    sessions(fresh("sessions").await).await;
    pending(fresh("pending").await).await;
    revocations(fresh("revocations").await).await;
    scep(fresh("scep").await).await;
    upstream(fresh("upstream").await).await;
    devices(fresh("devices").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_suite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    suite(|name| {
        let path = root.join(format!("{name}.db"));
        async move {
            Arc::new(SqliteStore::open(&path, Synchronous::Normal).await.unwrap()) as Arc<dyn Store>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_suite() {
    let pg = Pg::start();
    let pg = &pg;
    suite(|name| {
        let url = pg.create_db(name);
        async move { Arc::new(PgStore::open(&url, 8).await.unwrap()) as Arc<dyn Store> }
    })
    .await;
}

/// A store made before user names were unique regardless of case, holding `alice` and
/// `Alice`: estd refuses to start, naming both and saying what to do; after a rename it
/// starts and the names are unique from then on.
#[tokio::test]
async fn names_that_differ_only_in_case_stop_the_upgrade_with_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let s = SqliteStore::open(&path, Synchronous::Normal).await.unwrap();
    drop(s);
    // back to the schema before the migration, then two names that clash
    sql(&path, OLD_SCHEMA_WITH_CLASH).await;
    let err = match SqliteStore::open(&path, Synchronous::Normal).await {
        Ok(_) => panic!("opened a store with names that differ only in case"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("\"Alice\" and \"alice\""), "{err}");
    assert!(err.contains("differ only in case"), "{err}");
    assert!(err.contains("UPDATE users SET name"), "{err}");
    // renamed: it starts, and the rule holds from then on
    sql(
        &path,
        "UPDATE users SET name = 'alice-2' WHERE name = 'Alice'",
    )
    .await;
    let s = SqliteStore::open(&path, Synchronous::Normal).await.unwrap();
    let err = s.add_user("ALICE-2", "h", &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(_)), "{err}");
}

async fn sql(path: &std::path::Path, text: &str) {
    use sqlx::{Connection, Executor};
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    c.execute(text).await.unwrap();
    c.close().await.unwrap();
}

const OLD_SCHEMA_WITH_CLASH: &str = "DROP INDEX users_name_nocase; \
     DELETE FROM _sqlx_migrations WHERE description = 'user name nocase'; \
     INSERT INTO users (name, password_hash, created_at) VALUES ('alice', 'h', 't'), ('Alice', 'h', 't');";

/// Two processes' worth of pools on one database: migrations run once, both see the same
/// rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_pools_share_one_database() {
    let pg = Pg::start();
    let url = pg.create_db("shared");
    let (a, b) = tokio::join!(PgStore::open(&url, 4), PgStore::open(&url, 4));
    let (a, b) = (a.unwrap(), b.unwrap());
    a.add_user("alice", "h", &[]).await.unwrap();
    assert!(b.find_user("alice").await.unwrap().is_some());
    // each migration once (migrations/postgres/ has this many files)
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(
        pg.psql("shared", "SELECT count(*) FROM _sqlx_migrations"),
        files.to_string()
    );
}
