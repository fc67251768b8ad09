//! The portal's HTML: server-rendered with maud (escaped by construction), no JavaScript.
//! Menus are `<details>` elements, so they open with a keyboard and a screen reader too.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::pack::{Format, PasswordRule};

pub const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#f4f6f8}
header{display:flex;align-items:center;justify-content:space-between;gap:1rem;padding:.6rem 1rem;background:#12395c;color:#fff;flex-wrap:wrap}
header a,header summary{color:#fff}
.brand{font-weight:600;text-decoration:none}
nav{display:flex;gap:1rem;align-items:center}
details.menu{position:relative}
details.menu summary{cursor:pointer;list-style:none;padding:.3rem .6rem;border:1px solid #ffffff80;border-radius:4px}
details.menu summary::-webkit-details-marker{display:none}
details.menu summary::after{content:" \25BE"}
details.menu .items{position:absolute;right:0;z-index:2;min-width:17rem;margin-top:.3rem;padding:.4rem 0;background:#fff;border:1px solid #c7ced6;border-radius:4px;box-shadow:0 4px 12px #0002}
details.menu .items a,details.menu .items button{display:block;width:100%;padding:.45rem .9rem;color:#12395c;text-align:left;text-decoration:none;background:none;border:0;font:inherit;cursor:pointer}
details.menu .items a:hover,details.menu .items button:hover{background:#eef3f8}
details.menu .items form{margin:0}
.who{padding:.3rem .9rem;color:#555;font-size:.9rem}
main{max-width:42rem;margin:1.5rem auto;padding:0 1rem}
progress{width:100%;height:1.4rem}
div.card{background:#fff;border:1px solid #d5dbe1;border-radius:6px;padding:1.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}td,th{border:1px solid #d5dbe1;padding:.3rem .5rem;text-align:left}
a.primary{display:inline-block;background:#12395c;color:#fff;border-radius:4px;padding:.6rem 1.4rem;text-decoration:none}
h1{font-size:1.4rem;margin:.2rem 0 1rem}
form.card{background:#fff;border:1px solid #d5dbe1;border-radius:6px;padding:1.2rem}
.field{margin-bottom:1rem}
label{display:block;font-weight:600;margin-bottom:.25rem}
input,select,textarea{width:100%;padding:.5rem;border:1px solid #9aa5b1;border-radius:4px;font:inherit;background:#fff}
textarea{min-height:10rem;font-family:ui-monospace,monospace;font-size:.85rem}
[aria-invalid=true]{border-color:#b3261e;outline-color:#b3261e}
.error{color:#b3261e;margin:.25rem 0 0;font-weight:500}
.hint{color:#555;font-size:.9rem;margin:.25rem 0 0}
.hint ul{margin:.2rem 0 0;padding-left:1.2rem}
.banner{padding:.7rem 1rem;border-radius:4px;margin-bottom:1rem}
.banner.error{background:#fdecea;border:1px solid #f5c2bd}
.request-id{color:#555;font-size:.85rem;margin-top:1rem}
.scroll{overflow-x:auto}
main:has(#requests){max-width:76rem}
#requests td,#requests th{font-size:.9rem;vertical-align:top}
#requests td:nth-child(-n+6){white-space:nowrap}
#requests td:last-child{min-width:18rem;overflow-wrap:anywhere}
tr.failed td{background:#fdf3f2}
textarea[readonly]{background:#f8f9fa}
input[type=checkbox]{width:auto}
.banner.ok{background:#e8f5e9;border:1px solid #b9dfbc;color:#1e4620}
form.revoke{display:flex;gap:.3rem;align-items:center;margin:0}form.revoke select,form.revoke button{width:auto;padding:.2rem .4rem}
button.primary{background:#12395c;color:#fff;border:0;border-radius:4px;padding:.6rem 1.4rem;font:inherit;cursor:pointer}
button.primary:hover{background:#0d2a45}
@media (max-width:600px){header{padding:.5rem}main{margin:1rem auto}details.menu .items{right:auto;left:0}}
"#;

/// Errors shown beside fields: (field name, message).
pub type Errors = Vec<(&'static str, String)>;

fn error_for<'a>(errors: &'a Errors, field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, m)| m.as_str())
}

/// The signed-in user and the session's CSRF token.
pub struct Viewer<'a> {
    pub name: &'a str,
    pub csrf: &'a str,
    /// In one of the admin groups: sees everyone's requests.
    pub admin: bool,
}

pub fn layout(title: &str, viewer: Option<&Viewer<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Certificate provisioning portal" }
                link rel="stylesheet" href="/portal/style.css";
            }
            body {
                header {
                    a.brand href="/portal/" { "Certificate provisioning portal" }
                    @if let Some(v) = viewer {
                        nav aria-label="Main" {
                            details.menu.iwant {
                                summary { "I want to" }
                                div.items {
                                    a href="/portal/single" { "generate single certificate (no certificate signing request)" }
                                    a href="/portal/csr" { "generate single certificate (with certificate signing request)" }
                                    a href="/portal/bulk" { "generate bulk certificates" }
                                    a href="/portal/test" { "request a test certificate (MDM connector)" }
                                    a href="/portal/requests" { @if v.admin { "see recent requests" } @else { "see my recent requests" } }
                                    a href="/portal/certificates" { @if v.admin { "see and revoke certificates" } @else { "see and revoke my certificates" } }
                                }
                            }
                            details.menu.account {
                                summary { "Account" }
                                div.items {
                                    div.who { "Signed in as " strong { (v.name) } }
                                    a href="/portal/password" { "Change Password" }
                                    form method="post" action="/portal/logout" {
                                        input type="hidden" name="csrf" value=(v.csrf);
                                        button type="submit" { "Log out" }
                                    }
                                }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn field(
    errors: &Errors,
    name: &'static str,
    label: &str,
    input: impl FnOnce(bool, &str) -> Markup,
    hint: Option<Markup>,
) -> Markup {
    let err = error_for(errors, name);
    let err_id = format!("{name}-error");
    html! {
        div.field {
            label for=(name) { (label) }
            (input(err.is_some(), &err_id))
            @if let Some(h) = hint { div.hint id=(format!("{name}-hint")) { (h) } }
            @if let Some(e) = err { p.error id=(err_id) role="alert" { (e) } }
        }
    }
}

/// The template choice: name — description, the given one selected.
fn template_field(errors: &Errors, templates: &[(String, String)], selected: &str) -> Markup {
    field(
        errors,
        "template",
        "Certificate template",
        |inv, id| {
            html! {
                select id="template" name="template" aria-invalid=(inv) aria-describedby=(id) {
                    @for (name, description) in templates {
                        option value=(name) selected[name == selected] {
                            (name) @if !description.is_empty() { " — " (description) }
                        }
                    }
                }
            }
        },
        None,
    )
}

fn text_input(name: &'static str, value: &str, invalid: bool, err_id: &str, extra: &str) -> Markup {
    html! {
        input type=(if extra == "password" { "password" } else { "text" }) id=(name) name=(name) value=(value)
            aria-invalid=(invalid) aria-describedby=(err_id)
            autocomplete=(if extra == "password" { "new-password" } else { "off" });
    }
}

pub fn login(login_csrf: &str, user: &str, errors: &Errors, banner: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Log in" }
        @if let Some(b) = banner { div.banner.error role="alert" { (b) } }
        form.card method="post" action="/portal/login" {
            input type="hidden" name="csrf" value=(login_csrf);
            (field(errors, "username", "User name", |inv, id| html! {
                input type="text" id="username" name="username" value=(user) autocomplete="username" required aria-invalid=(inv) aria-describedby=(id);
            }, None))
            (field(errors, "password", "Password", |inv, id| html! {
                input type="password" id="password" name="password" autocomplete="current-password" required aria-invalid=(inv) aria-describedby=(id);
            }, None))
            button.primary type="submit" { "Log in" }
        }
    };
    layout("Log in", None, body)
}

pub fn password(viewer: &Viewer<'_>, errors: &Errors, done: bool) -> Markup {
    let body = html! {
        h1 { "Change Password" }
        @if done { div.banner.ok role="status" { "Your password was changed." } }
        @if let Some(e) = error_for(errors, "general") { div.banner.error role="alert" { (e) } }
        form.card method="post" action="/portal/password" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            (field(errors, "current", "Current password", |inv, id| html! {
                input type="password" id="current" name="current" autocomplete="current-password" required aria-invalid=(inv) aria-describedby=(id);
            }, None))
            (field(errors, "new", "New password", |inv, id| html! {
                input type="password" id="new" name="new" autocomplete="new-password" required aria-invalid=(inv) aria-describedby=(id);
            }, Some(html! { "At least 8 characters." })))
            (field(errors, "repeat", "New password again", |inv, id| html! {
                input type="password" id="repeat" name="repeat" autocomplete="new-password" required aria-invalid=(inv) aria-describedby=(id);
            }, None))
            button.primary type="submit" { "Change Password" }
        }
    };
    layout("Change Password", Some(viewer), body)
}

/// The values a certificate form was filled with (never the password).
#[derive(Default)]
pub struct CertForm {
    pub common_name: String,
    pub san: String,
    pub template: String,
    pub description: String,
    pub format: String,
    pub csr_pem: String,
}

fn password_rules() -> Markup {
    html! {
        "Your password must conform to these rules:"
        ul {
            li { (PasswordRule::Classes.to_string()) }
            li { (PasswordRule::Length.to_string()) }
            li { (PasswordRule::Characters.to_string()) }
        }
    }
}

/// The single-certificate form; `with_csr` selects the CSR variant.
pub fn single(
    viewer: &Viewer<'_>,
    with_csr: bool,
    templates: &[(String, String)],
    values: &CertForm,
    errors: &Errors,
) -> Markup {
    let (title, action) = if with_csr {
        (
            "Generate single certificate (with certificate signing request)",
            "/portal/csr",
        )
    } else {
        (
            "Generate single certificate (no certificate signing request)",
            "/portal/single",
        )
    };
    let body = html! {
        h1 { (title) }
        @if let Some(e) = error_for(errors, "general") { div.banner.error role="alert" { (e) } }
        form.card method="post" action=(action) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            @if with_csr {
                (field(errors, "csr_pem", "Certificate signing request (PEM)", |inv, id| html! {
                    textarea id="csr_pem" name="csr_pem" required aria-invalid=(inv) aria-describedby=(id)
                        placeholder="-----BEGIN CERTIFICATE REQUEST-----" { (values.csr_pem) }
                }, None))
            } @else {
                (field(errors, "common_name", "Common Name", |inv, id| text_input("common_name", &values.common_name, inv, id, ""),
                    Some(html! { "Your user name, unless you are an administrator requesting for another user." })))
                (field(errors, "san", "Subject alternative name (MAC address)", |inv, id| text_input("san", &values.san, inv, id, ""),
                    Some(html! { "00-11-22-33-44-55, 00:11:22:33:44:55, 0011.2233.4455, 001122-334455 or 001122334455" })))
            }
            (template_field(errors, templates, &values.template))
            (field(errors, "description", "Description (optional)", |inv, id| text_input("description", &values.description, inv, id, ""), None))
            (field(errors, "format", "Certificate download format", |inv, id| html! {
                select id="format" name="format" aria-invalid=(inv) aria-describedby=(id) {
                    @for f in Format::ALL {
                        option value=(f.as_str()) selected[f.as_str() == values.format] { (f.description()) }
                    }
                }
            }, None))
            (field(errors, "password", "Certificate password", |inv, id| text_input("password", "", inv, id, "password"), Some(password_rules())))
            button.primary type="submit" { "Generate" }
        }
    };
    layout(title, Some(viewer), body)
}

/// The bulk upload form. `errors`: the request's messages (one per refused row).
pub fn bulk_form(
    viewer: &Viewer<'_>,
    templates: &[(String, String)],
    values: &CertForm,
    errors: &[String],
) -> Markup {
    let body = html! {
        h1 { "Generate bulk certificates" }
        @if !errors.is_empty() {
            div.banner.error role="alert" {
                @for e in errors { p.error { (e) } }
            }
        }
        p { a href="/api/v1/bulk/template.csv" download="bulk-template.csv" { "Download CSV template here" }
            " — one row per device: its CN and its MAC address (SAN); up to 500 rows." }
        form.card method="post" action="/portal/bulk" enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            div.field {
                label for="csv" { "CSV file" }
                input type="file" id="csv" name="csv" accept=".csv,text/csv" required;
            }
            (template_field(&Vec::new(), templates, &values.template))
            div.field {
                label for="description" { "Description" }
                input type="text" id="description" name="description" value=(values.description);
            }
            div.field {
                label for="format" { "Certificate download format" }
                select id="format" name="format" {
                    @for f in Format::ALL {
                        option value=(f.as_str()) selected[f.as_str() == values.format] { (f.description()) }
                    }
                }
            }
            div.field {
                label for="password" { "Certificate password" }
                input type="password" id="password" name="password" autocomplete="new-password" required;
                div.hint { (password_rules()) }
            }
            button.primary type="submit" { "Generate" }
        }
    };
    layout("Generate bulk certificates", Some(viewer), body)
}

/// What the status page shows of a job.
pub struct StatusView<'a> {
    pub id: i64,
    pub template: &'a str,
    pub state: &'a str,
    pub total: i64,
    pub processed: i64,
    pub percent: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub errors: &'a [(i64, String)],
}

/// The Certificate Generation Status page: a progress bar kept current by `/portal/bulk.js`
/// (no reload until the job ends), Cancel, then the summary, the download and the
/// confirmation.
pub fn bulk_status(viewer: &Viewer<'_>, s: &StatusView<'_>) -> Markup {
    let finished = matches!(s.state, "completed" | "cancelled" | "failed");
    let body = html! {
        h1 { "Certificate Generation Status" }
        p { "Bulk request " (s.id) " · template " (s.template) " · " (s.total) " devices" }
        div.card {
            label for="bar" { "Progress" }
            progress id="bar" max="100" value=(s.percent) data-job=(s.id) data-finished=(finished) { (s.percent) " %" }
            p id="progress-text" aria-live="polite" { (s.processed) " of " (s.total) " (" (s.percent) " %)" }
            @if !finished {
                form method="post" action=(format!("/portal/bulk/{}/cancel", s.id)) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    button type="submit" { "Cancel" }
                }
            } @else {
                h2 { "Summary" }
                p id="summary" {
                    "Issued: " strong { (s.done) } " · Failed: " strong { (s.failed) }
                    @if s.cancelled > 0 { " · Cancelled: " strong { (s.cancelled) } }
                }
                @if !s.errors.is_empty() {
                    table {
                        thead { tr { th { "Row" } th { "Reason" } } }
                        tbody { @for (row, reason) in s.errors { tr { td { (row) } td { (reason) } } } }
                    }
                }
                p { a.primary id="download" href=(format!("/portal/bulk/{}/download", s.id)) { "Download the certificates (zip)" } }
                form method="post" action=(format!("/portal/bulk/{}/confirm", s.id)) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    p.hint { "Confirming deletes the keys kept for this download; you can then submit another request." }
                    button.primary type="submit" id="confirm" { "Download complete" }
                }
            }
        }
        script src="/portal/bulk.js" {}
    };
    layout("Certificate Generation Status", Some(viewer), body)
}

/// Keeps the progress bar current without reloading; reloads once when the job has ended.
pub const BULK_JS: &str = r#"(function () {
  var bar = document.getElementById('bar');
  if (!bar || bar.dataset.finished === 'true') return;
  var text = document.getElementById('progress-text');
  function tick() {
    fetch('/api/v1/bulk/' + bar.dataset.job, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (s) {
          bar.value = s.percent;
          text.textContent = s.processed + ' of ' + s.total + ' (' + s.percent + ' %)';
          if (s.state === 'completed' || s.state === 'cancelled' || s.state === 'failed') { window.location.reload(); return; }
        }
        setTimeout(tick, 700);
      })
      .catch(function () { setTimeout(tick, 2000); });
  }
  setTimeout(tick, 300);
})();
"#;

/// The values the test-certificate form was filled with.
#[derive(Default)]
pub struct TestForm {
    pub template: String,
    pub cert_name: String,
    pub user_name: String,
    pub domain: String,
    pub email: String,
}

/// The MDM connector's *Test certificate* window, as a form.
pub fn test_form(
    viewer: &Viewer<'_>,
    templates: &[(String, String)],
    values: &TestForm,
    errors: &Errors,
) -> Markup {
    let title = "Test certificate";
    let body = html! {
        h1 { (title) }
        p { "Issues a test certificate through the same enrollment path a device uses, with the Subject alternative name the template makes of these values. The template puts Test, or leaves the entry out, wherever you leave a value empty." }
        @if let Some(e) = error_for(errors, "general") { div.banner.error role="alert" { "FAIL: " (e) } }
        form.card method="post" action="/portal/test" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            (template_field(errors, templates, &values.template))
            (field(errors, "cert_name", "Certificate name", |inv, id| text_input("cert_name", &values.cert_name, inv, id, ""),
                Some(html! { "No spaces. It becomes the certificate's Common Name." })))
            (field(errors, "user_name", "User name", |inv, id| text_input("user_name", &values.user_name, inv, id, ""), None))
            (field(errors, "domain", "Domain", |inv, id| text_input("domain", &values.domain, inv, id, ""),
                Some(html! { "A fully qualified domain name, such as example.com." })))
            (field(errors, "email", "Email address", |inv, id| text_input("email", &values.email, inv, id, ""), None))
            button.primary type="submit" { "Save and Test" }
        }
    };
    layout(title, Some(viewer), body)
}

/// A test certificate that was issued: what it says, and its PEM texts to copy.
pub fn test_result(viewer: &Viewer<'_>, t: &crate::service::testcert::TestCertificate) -> Markup {
    let title = "Test certificate";
    let body = html! {
        h1 { (title) }
        div.banner.ok role="status" id="test-result" { "PASS: the test certificate was issued." }
        table {
            tr { th scope="row" { "Template" } td { (t.template) } }
            tr { th scope="row" { "Subject" } td id="subject" { (t.subject) } }
            tr { th scope="row" { "Subject alternative name" } td id="san" { @if t.san.is_empty() { "none" } @else { (t.san.join(", ")) } } }
            tr { th scope="row" { "Serial number" } td id="serial" { (t.serial) } }
            tr { th scope="row" { "Valid" } td { (t.not_before) " – " (t.not_after) } }
            tr { th scope="row" { "Request ID" } td id="request-id" { code { (t.request_id) } } }
        }
        div.field {
            label for="certificate_pem" { "Certificate (PEM)" }
            textarea id="certificate_pem" readonly { (t.certificate_pem) }
        }
        div.field {
            label for="private_key_pem" { "Private key (PEM, not stored by the server)" }
            textarea id="private_key_pem" readonly { (t.private_key_pem.as_str()) }
        }
        div.field {
            label for="ca_chain_pem" { "CA chain (PEM)" }
            textarea id="ca_chain_pem" readonly { (t.ca_chain_pem) }
        }
        p { a href="/portal/test" { "Run another test" } }
    };
    layout(title, Some(viewer), body)
}

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
                            tr.failed[e.status >= 400] {
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

/// A plain message page (errors outside a form).
pub fn message(
    title: &str,
    viewer: Option<&Viewer<'_>>,
    text: &str,
    link: Option<(&str, &str)>,
) -> Markup {
    let body = html! {
        h1 { (title) }
        div.banner.error role="alert" { (text) }
        @if let Some((href, label)) = link { p { a href=(href) { (label) } } }
    };
    layout(title, viewer, body)
}

pub fn css() -> PreEscaped<&'static str> {
    PreEscaped(STYLE)
}
