//! How a row of each table becomes its record, and the column lists the queries select in
//! that order: `sql_rows!` expands, inside `sql_store!`, for the driver's row type.

macro_rules! sql_rows {
    ($row:ty) => {
fn audit_row(r: &$row) -> AuditEvent {
    AuditEvent {
        at: r.get(0),
        request_id: r.get(1),
        operation: r.get(2),
        label: r.get(3),
        principal: r.get(4),
        peer: r.get(5),
        outcome: r.get(6),
        status: u16::try_from(r.get::<i64, _>(7)).unwrap_or(0),
        reason: r.get(8),
        serial: r.get(9),
    }
}

const CERT_COLUMNS: &str = "c.serial, c.subject, c.san, c.template, c.requester, c.operation, c.not_before, c.not_after, c.issued_at, c.der, c.description, c.issuer";

fn cert_row(r: &$row) -> CertRecord {
    CertRecord {
        serial: r.get(0),
        subject: r.get(1),
        san: r.get(2),
        template: r.get(3),
        requester: r.get(4),
        operation: r.get(5),
        not_before: r.get(6),
        not_after: r.get(7),
        issued_at: r.get(8),
        der: r.get(9),
        description: r.get(10),
        issuer: r.get(11),
    }
}

fn reason_code(n: i64) -> u8 {
    u8::try_from(n).unwrap_or(0)
}

fn revocation_row(r: &$row) -> RevocationRecord {
    RevocationRecord {
        serial: r.get(0),
        revoked_at: r.get(1),
        reason: reason_code(r.get(2)),
        revoked_by: r.get(3),
        key_fingerprint: r.get(4),
        issuer: r.get(5),
    }
}

const JOB_COLUMNS: &str = "id, owner, template, description, format, password_sealed, state, total, created_at, finished_at, confirmed_at";
const ITEM_COLUMNS: &str = "id, job_id, row_number, cn, san, state, error, serial, key_sealed, claim";

fn job_row(r: &$row) -> JobRecord {
    JobRecord {
        id: r.get(0),
        owner: r.get(1),
        template: r.get(2),
        description: r.get(3),
        format: r.get(4),
        password_sealed: r.get(5),
        state: r.get(6),
        total: r.get(7),
        created_at: r.get(8),
        finished_at: r.get(9),
        confirmed_at: r.get(10),
    }
}

fn item_row(r: &$row) -> JobItem {
    JobItem {
        id: r.get(0),
        job_id: r.get(1),
        row_number: r.get(2),
        cn: r.get(3),
        san: r.get(4),
        state: r.get(5),
        error: r.get(6),
        serial: r.get(7),
        key_sealed: r.get(8),
        claim: r.get(9),
    }
}

const PENDING_COLUMNS: &str = "id, template, requester, key_fingerprint, subject, san, operation, csr, state, reason, created_at, decided_at, decided_by, serial";

fn pending_row(r: &$row) -> PendingRecord {
    PendingRecord {
        id: r.get(0),
        template: r.get(1),
        requester: r.get(2),
        key_fingerprint: r.get(3),
        subject: r.get(4),
        san: r.get(5),
        operation: r.get(6),
        csr: r.get(7),
        state: PendingState::parse(&r.get::<String, _>(8)).unwrap_or(PendingState::Rejected),
        reason: r.get(9),
        created_at: r.get(10),
        decided_at: r.get(11),
        decided_by: r.get(12),
        serial: r.get(13),
    }
}
    };
}

pub(crate) use sql_rows;
