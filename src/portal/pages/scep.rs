//! The enrollment codes page (administrators; SCEP challenges are the same codes): issue one
//! bound code, shown once, or a batch downloaded as CSV; see the open ones, withdraw one.

use super::*;

/// What the form was filled with.
#[derive(Default)]
pub struct ChallengeForm {
    pub template: String,
    pub cn: String,
    pub san: String,
    pub expires: String,
    /// The batch form's count.
    pub count: String,
}

/// A challenge just issued: shown this once.
pub struct Shown<'a> {
    pub id: i64,
    pub secret: &'a str,
    pub template: &'a str,
    pub expires_at: &'a str,
}

pub fn scep_challenges(
    viewer: &Viewer<'_>,
    templates: &[(String, String)],
    form: &ChallengeForm,
    errors: &Errors,
    shown: Option<&Shown<'_>>,
    open: &[crate::store::ChallengeRecord],
) -> Markup {
    let title = "Enrollment codes and SCEP challenges";
    let p = crate::model::printable;
    let body = html! {
        h1 { (title) }
        @if let Some(s) = shown {
            div.banner.ok role="status" id="challenge-issued" {
                "Challenge " (s.id) " for the template " (s.template) ", single use, valid until "
                (s.expires_at.get(..19).unwrap_or(s.expires_at).replace('T', " ")) " UTC. It is shown only now: "
                code id="challenge-secret" { (s.secret) }
            }
        }
        @if let Some(e) = error_for(errors, "general") { div.banner.error role="alert" { (e) } }
        form.card method="post" action="/portal/scep" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            (template_field(errors, templates, &form.template))
            (field(errors, "cn", "CN the request must carry (optional)", |inv, id| text_input("cn", &form.cn, inv, id, ""),
                Some(html! { "Required for a template whose CN must match the user name." })))
            (field(errors, "san", "Subject alternative names the request must carry (optional)", |inv, id| text_input("san", &form.san, inv, id, ""),
                Some(html! { "KIND:VALUE, comma-separated: dns:host.example.com, ip:192.0.2.1" })))
            (field(errors, "expires", "Valid for", |inv, id| text_input("expires", &form.expires, inv, id, ""),
                Some(html! { "30m, 24h, 7d (at most 90d)" })))
            button.primary type="submit" { "Issue challenge" }
        }
        h2 { "A batch of codes" }
        p { "Codes bound to no name, each single use, downloaded once as a CSV file (id, code, template, expiry): for devices that present them over EST (the Basic password or the CSR's challengePassword) or SCEP." }
        form.card method="post" action="/portal/codes" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            (field(errors, "batch-template", "Certificate template", |inv, id| html! {
                select id="batch-template" name="template" aria-invalid=(inv) aria-describedby=(id) {
                    @for (name, description) in templates {
                        option value=(name) selected[*name == form.template] {
                            (name) @if !description.is_empty() { " — " (description) }
                        }
                    }
                }
            }, None))
            (field(errors, "count", "How many", |inv, id| text_input("count", &form.count, inv, id, ""),
                Some(html! { "1 to 10000" })))
            (field(errors, "batch-expires", "Valid for", |inv, id| html! {
                input type="text" id="batch-expires" name="expires" value=(form.expires) aria-invalid=(inv) aria-describedby=(id) autocomplete="off";
            }, Some(html! { "30m, 24h, 7d (at most 90d)" })))
            button.primary type="submit" { "Download codes (CSV)" }
        }
        h2 { "Open challenges" }
        @if open.is_empty() {
            p id="no-challenges" { "No open challenges." }
        } @else {
            div.scroll {
                table id="challenges" {
                    thead { tr { th { "ID" } th { "Template" } th { "CN" } th { "SAN" } th { "Issued by" } th { "Expires (UTC)" } th {} } }
                    tbody {
                        @for c in open {
                            tr data-id=(c.id) {
                                td { (c.id) }
                                td { (p(&c.template)) }
                                td { (p(c.cn.as_deref().unwrap_or("any"))) }
                                td { (p(c.san.as_deref().unwrap_or("any"))) }
                                td { (p(&c.created_by)) }
                                td { (c.expires_at.get(..19).unwrap_or(&c.expires_at).replace('T', " ")) }
                                td {
                                    form method="post" action=(format!("/portal/scep/{}/revoke", c.id)) {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        button type="submit" { "Withdraw" }
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
