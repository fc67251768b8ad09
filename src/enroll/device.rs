//! Devices that authenticate with their manufacturer certificate (IDevID): verified against
//! the template's vendor CAs and CRLs, then its deny-list and (when it keeps one) allow-list.

use super::*;
use crate::policy::vendor::DeviceRefusal;
use crate::store::DeviceState;

impl EnrollService {
    /// The device behind a TLS client chain (leaf first) on a template that trusts its
    /// manufacturer: `idevid:<serial>`, allowed this template only. Every refusal is a 403
    /// naming the device (its serial, or the certificate's subject).
    pub async fn authenticate_device(
        &self,
        chain: &[Vec<u8>],
        template: &Template,
    ) -> Result<Principal, EnrollError> {
        let checked = match &template.vendor {
            Some(vendor) => vendor.verify(&template.name, chain, SystemTime::now()),
            None => Err(DeviceRefusal::NotTrusted {
                subject: chain
                    .first()
                    .and_then(|c| subject_of(c))
                    .unwrap_or_default(),
                template: template.name.clone(),
                why: "the template trusts no manufacturer CA (trust_vendor_cas)".into(),
            }),
        };
        let device = match checked {
            Ok(d) => d,
            Err(refusal) => return Err(refused(template, refusal)),
        };
        self.check_listed(template, &device.serial).await?;
        tracing::info!(
            serial = %device.serial,
            template = %template.name,
            "device authenticated by its manufacturer certificate (IDevID)"
        );
        Ok(Principal {
            name: auth::device_requester(&device.serial),
            groups: Vec::new(),
            method: AuthMethod::DeviceCert {
                template: template.name.clone(),
                serial: device.serial,
                cn: device.cn,
            },
        })
    }

    /// The template's lists: a denied device never enrolls nor renews; with
    /// `idevid_allow_list`, only listed devices do.
    pub(super) async fn check_listed(
        &self,
        template: &Template,
        serial: &str,
    ) -> Result<(), EnrollError> {
        let listed = self.store.find_device(&template.name, serial).await?;
        let allow_list = template.vendor.as_ref().is_some_and(|v| v.allow_list);
        let refusal = match listed.map(|d| d.state) {
            Some(DeviceState::Deny) => DeviceRefusal::Denied {
                serial: serial.to_string(),
                template: template.name.clone(),
            },
            None if allow_list => DeviceRefusal::NotAllowed {
                serial: serial.to_string(),
                template: template.name.clone(),
            },
            Some(DeviceState::Allow) | None => return Ok(()),
        };
        Err(refused(template, refusal))
    }
}

fn refused(template: &Template, refusal: DeviceRefusal) -> EnrollError {
    tracing::warn!(
        serial = %refusal.serial().unwrap_or("-"),
        template = %template.name,
        reason = %refusal,
        "refused: manufacturer certificate (IDevID)"
    );
    EnrollError::DeviceRefused(refusal)
}

/// A device's CSR carries the CN its IDevID gives it (the template's `idevid_cn`).
pub(super) fn check_device_cn(csr: &Csr, cn: &str, serial: &str) -> Result<(), EnrollError> {
    match csr.common_name() {
        Some(have) if have == cn => Ok(()),
        have => Err(EnrollError::BadRequest(format!(
            "the CSR's CN must be {:?}, the name this template gives the device {serial} (its CSR has {})",
            crate::model::printable(cn),
            have.map(|h| format!("CN={}", crate::model::printable(&h)))
                .unwrap_or_else(|| "no CN".into())
        ))),
    }
}
