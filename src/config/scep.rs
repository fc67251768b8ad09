//! `[scep]`: where SCEP is served besides the TLS listener.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawScep {
    /// A plain-HTTP listener for `/scep/…` and `/cgi-bin/pkiclient.exe` only ("" or unset:
    /// none). SCEP messages are signed and encrypted themselves; most SCEP clients speak
    /// plain HTTP.
    pub listen: String,
}
