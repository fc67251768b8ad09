//! The portal's HTML: server-rendered with maud (escaped by construction), no JavaScript.
//! Menus are `<details>` elements, so they open with a keyboard and a screen reader too.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::pack::{Format, PasswordRule};

mod bulk;
mod forms;
mod lists;
mod scep;

pub use bulk::*;
pub use forms::*;
pub use lists::*;
pub use scep::*;

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
                                    @if v.admin { a href="/portal/scep" { "issue SCEP challenges and enrollment codes" } }
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
