//! The requests (audit) and certificates pages.

use super::*;

/// The filter of the Requests page.
#[derive(Default)]
pub struct RequestFilter {
    pub since: String,
    pub user: String,
    pub failed: bool,
}

/// Recent requests from the audit log, newest first: "was my request received, and why
/// did it fail". Administrators see everyone's (and may filter by user), others their own.
pub fn requests(
    viewer: &Viewer<'_>,
    filter: &RequestFilter,
    events: &[crate::store::AuditEvent],
    error: Option<&str>,
) -> Markup {
    let title = "Requests";
    let body = html! {
        h1 { (title) }
        form.card method="get" action="/portal/requests" {
            (field(&Vec::new(), "since", "Since", |_, id| text_input("since", &filter.since, false, id, ""),
                Some(html! { "How far back: 30s, 10m, 2h or 1d." })))
            @if viewer.admin {
                (field(&Vec::new(), "user", "User (optional)", |_, id| text_input("user", &filter.user, false, id, ""), None))
            }
            div.field {
                label { input type="checkbox" name="failed" value="1" checked[filter.failed]; " Failed requests only" }
            }
            button.primary type="submit" { "Show" }
        }
        @if let Some(e) = error { div.banner.error role="alert" { (e) } }
        @if events.is_empty() && error.is_none() {
            p id="no-requests" { "No requests match." }
        } @else if !events.is_empty() {
            div.scroll {
                table id="requests" {
                    thead { tr { th { "Time (UTC)" } th { "Request ID" } th { "Operation" } th { "Template" } th { "User" } th { "Status" } th { "Reason or serial" } } }
                    tbody {
                        @for e in events.iter().rev() {
                            tr.failed[e.status >= 400 || e.outcome == "error"] {
                                td { (e.at.get(..19).unwrap_or(&e.at).replace('T', " ")) }
                                td { code { (e.request_id) } }
                                // (HTML-escaped by maud; control characters shown as \u{…})
                                td { (crate::model::printable(&e.operation)) }
                                td { (crate::model::printable(e.label.as_deref().unwrap_or("-"))) }
                                td { (crate::model::printable(e.principal.as_deref().unwrap_or("-"))) }
                                td { (e.status) }
                                td { (crate::model::printable(e.reason.as_deref().or(e.serial.as_deref()).unwrap_or(""))) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(title, Some(viewer), body)
}

/// The certificates page: search, and a revoke form under each certificate not revoked.
pub fn certificates(
    viewer: &Viewer<'_>,
    q: &crate::service::certs::ListQuery,
    list: &[(
        crate::store::CertRecord,
        Option<crate::store::RevocationRecord>,
    )],
    now: &str,
    banner: Option<(bool, &str)>,
) -> Markup {
    let title = "Certificates";
    let body = html! {
        h1 { (title) }
        form.card method="get" action="/portal/certificates" {
            (field(&Vec::new(), "q", "Subject, SAN or serial contains", |_, id| text_input("q", &q.q, false, id, ""), None))
            @if viewer.admin {
                (field(&Vec::new(), "user", "Requested by (optional)", |_, id| text_input("user", &q.user, false, id, ""), None))
            }
            (field(&Vec::new(), "template", "Template (optional)", |_, id| text_input("template", &q.template, false, id, ""), None))
            div.field {
                label for="status" { "Status" }
                select id="status" name="status" {
                    @for (v, l) in [("", "any"), ("valid", "valid"), ("revoked", "revoked"), ("expired", "expired")] {
                        option value=(v) selected[q.status == v] { (l) }
                    }
                }
            }
            button.primary type="submit" { "Search" }
        }
        @if let Some((ok, text)) = banner {
            @if ok { div.banner.ok role="status" id="revoked-banner" { (text) } }
            @else { div.banner.error role="alert" { (text) } }
        }
        @if list.is_empty() {
            p id="no-certificates" { "No certificates match." }
        } @else {
            div.scroll {
                table id="certificates" {
                    thead { tr { th { "Serial" } th { "Subject" } th { "SAN" } th { "Template" } th { "Requested by" } th { "Valid until (UTC)" } th { "Status" } th { "Revoke" } } }
                    tbody {
                        @for (c, r) in list {
                            @let status = crate::service::certs::status_text(c, r.as_ref(), now);
                            tr.failed[r.is_some()] data-serial=(c.serial) {
                                td { code { (c.serial) } }
                                td { (c.subject) }
                                td { (if c.san.is_empty() { "-" } else { &c.san }) }
                                td { (c.template) }
                                td { (c.requester) }
                                td { (c.not_after.get(..19).unwrap_or(&c.not_after).replace('T', " ")) }
                                td.status {
                                    (status)
                                    @if let Some(r) = r { " (" (crate::revocation::reason_name(r.reason)) ")" }
                                }
                                td {
                                    @if r.is_none() {
                                        form.revoke method="post" action=(format!("/portal/certificates/{}/revoke", c.serial)) {
                                            input type="hidden" name="csrf" value=(viewer.csrf);
                                            select name="reason" aria-label="Reason" {
                                                @for (name, _) in crate::revocation::REASONS { option value=(name) { (name) } }
                                            }
                                            button type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(title, Some(viewer), body)
}
