//! The certificate forms' pages: a single certificate (attributes or CSR), the MDM test.

use super::*;

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

pub(super) fn password_rules() -> Markup {
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
