//! The certificate forms: a single certificate from attributes or from a CSR, and the MDM
//! connector's test certificate.

use super::*;

/// The templates for a form's choice, name and description, sorted by name with those
/// the form suits best (`preferred`) first.
pub(super) fn template_choices(
    state: &AppState,
    who: &Principal,
    preferred: impl Fn(&SanStyle) -> bool,
) -> Vec<(String, String)> {
    let mut list: Vec<(bool, String, String)> = state
        .templates
        .iter()
        // only the templates this user may use
        .filter(|t| t.may_use(&who.name, &who.groups, state.enroll.est_group()))
        .map(|t| {
            (
                !preferred(&t.san_style),
                t.name.clone(),
                t.description.clone(),
            )
        })
        .collect();
    list.sort();
    list.into_iter().map(|(_, n, d)| (n, d)).collect()
}

/// Certificate forms: MAC-address templates first (the portal's devices).
pub(super) fn device_choices(state: &AppState, who: &Principal) -> Vec<(String, String)> {
    template_choices(state, who, |s| *s == SanStyle::Mac)
}

pub(super) async fn single_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    show_form(&state, &headers, false).await
}

pub(super) async fn csr_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    show_form(&state, &headers, true).await
}

pub(super) async fn show_form(state: &AppState, headers: &HeaderMap, with_csr: bool) -> Response {
    let s = match require_session(state, headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let choices = device_choices(state, &s.principal);
    let values = CertForm {
        common_name: s.principal.name.clone(),
        template: choices.first().map(|(n, _)| n.clone()).unwrap_or_default(),
        format: "pkcs12-chain".into(),
        ..CertForm::default()
    };
    let viewer = viewer(state, &s);
    page(
        StatusCode::OK,
        pages::single(&viewer, with_csr, &choices, &values, &Vec::new()),
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct CertFormIn {
    csrf: String,
    common_name: String,
    san: String,
    template: String,
    description: String,
    format: String,
    password: String,
    csr_pem: String,
}

pub(super) async fn single_submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    conn: Option<Extension<ConnInfo>>,
    rid: Option<Extension<RequestId>>,
    Form(form): Form<CertFormIn>,
) -> Response {
    submit(state, headers, conn, rid, form, false).await
}

pub(super) async fn csr_submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    conn: Option<Extension<ConnInfo>>,
    rid: Option<Extension<RequestId>>,
    Form(form): Form<CertFormIn>,
) -> Response {
    submit(state, headers, conn, rid, form, true).await
}

pub(super) async fn submit(
    state: Arc<AppState>,
    headers: HeaderMap,
    conn: Option<Extension<ConnInfo>>,
    rid: Option<Extension<RequestId>>,
    form: CertFormIn,
    with_csr: bool,
) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let op = if with_csr {
        "portal-csr"
    } else {
        "portal-single"
    };
    let mut note = form_note(op, &s, &form.template);
    let viewer = viewer(&state, &s);
    let choices = device_choices(&state, &s.principal);
    let values = CertForm {
        common_name: form.common_name.clone(),
        san: form.san.clone(),
        template: form.template.clone(),
        description: form.description.clone(),
        format: form.format.clone(),
        csr_pem: form.csr_pem.clone(),
    };
    if !session::csrf_ok(&s.csrf, Some(&form.csrf)) {
        let markup = pages::single(&viewer, with_csr, &choices, &values, &expired_errors());
        return expired_form(note, markup);
    }
    let meta = RequestMeta {
        request_id: rid.map(|r| r.0.0.clone()).unwrap_or_default(),
        peer: peer_of(&conn),
        label: Some(form.template.clone()),
    };
    let request = SingleRequest {
        template: form.template,
        common_name: form.common_name,
        san: form.san,
        csr_pem: with_csr.then_some(form.csr_pem),
        description: form.description,
        format: form.format,
        password: form.password,
    };
    match single::issue_single(&state.ctx(), &meta, &s.principal, &request, op).await {
        Ok(z) => {
            note.serial = Some(z.serial);
            note.recorded = true;
            with_note(crate::web::zip_response(&z.file_name, z.zip), note)
        }
        Err(e) => {
            let (status, errors) = refused(&mut note, e);
            with_note(
                page(
                    status,
                    pages::single(&viewer, with_csr, &choices, &values, &errors),
                ),
                note,
            )
        }
    }
}

pub(super) async fn test_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let choices = test_choices(&state, &s.principal);
    let values = TestForm {
        template: choices.first().map(|(n, _)| n.clone()).unwrap_or_default(),
        user_name: s.principal.name.clone(),
        ..TestForm::default()
    };
    let viewer = viewer(&state, &s);
    page(
        StatusCode::OK,
        pages::test_form(&viewer, &choices, &values, &Vec::new()),
    )
}

/// Templates for the test form: those whose SAN a connector's fields can fill come first.
pub(super) fn test_choices(state: &AppState, who: &Principal) -> Vec<(String, String)> {
    template_choices(state, who, |s| {
        matches!(s, SanStyle::Upn | SanStyle::UpnEmail | SanStyle::Other(_))
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct TestFormIn {
    csrf: String,
    template: String,
    cert_name: String,
    user_name: String,
    domain: String,
    email: String,
}

pub(super) async fn test_submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    conn: Option<Extension<ConnInfo>>,
    rid: Option<Extension<RequestId>>,
    Form(form): Form<TestFormIn>,
) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut note = form_note(testcert::OPERATION, &s, &form.template);
    let viewer = viewer(&state, &s);
    let choices = test_choices(&state, &s.principal);
    let values = TestForm {
        template: form.template.clone(),
        cert_name: form.cert_name.clone(),
        user_name: form.user_name.clone(),
        domain: form.domain.clone(),
        email: form.email.clone(),
    };
    if !session::csrf_ok(&s.csrf, Some(&form.csrf)) {
        let markup = pages::test_form(&viewer, &choices, &values, &expired_errors());
        return expired_form(note, markup);
    }
    let meta = RequestMeta {
        request_id: rid.map(|r| r.0.0.clone()).unwrap_or_default(),
        peer: peer_of(&conn),
        label: note.label.clone(),
    };
    let request = testcert::TestRequest {
        template: form.template,
        cert_name: form.cert_name,
        user_name: form.user_name,
        domain: form.domain,
        email: form.email,
    };
    match testcert::issue_test(&state.ctx(), &meta, &s.principal, &request).await {
        Ok(t) => {
            note.serial = Some(t.serial.clone());
            note.recorded = true;
            with_note(page(StatusCode::OK, pages::test_result(&viewer, &t)), note)
        }
        Err(e) => {
            let (status, errors) = refused(&mut note, e);
            with_note(
                page(
                    status,
                    pages::test_form(&viewer, &choices, &values, &errors),
                ),
                note,
            )
        }
    }
}
