//! The bulk request's pages: the upload form, the progress page and its script.

use super::*;

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
