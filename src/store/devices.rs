//! The devices a template's allow-list or deny-list names, by the serial number of their
//! manufacturer certificate (IDevID). Its own trait, which `Store` requires, and its SQL once
//! for both databases (`devices_sql!`, expanded by `sql_store!`).

use async_trait::async_trait;

use super::StoreError;

/// Whether a listed device may enroll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Allow,
    Deny,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Self::Allow),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }
}

/// A device on a template's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub template: String,
    /// The IDevID's serialNumber attribute.
    pub serial: String,
    pub state: DeviceState,
    pub note: Option<String>,
    pub added_by: String,
    pub added_at: String,
}

#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Adds the devices, or replaces the entries under their (template, serial), in one
    /// transaction; returns how many were written.
    async fn put_devices(&self, devices: &[DeviceRecord]) -> Result<u64, StoreError>;
    /// Removes a device from its template's list; false when it was not on it.
    async fn remove_device(&self, template: &str, serial: &str) -> Result<bool, StoreError>;
    async fn find_device(
        &self,
        template: &str,
        serial: &str,
    ) -> Result<Option<DeviceRecord>, StoreError>;
    /// By template and serial; of one template when given; at most `limit`.
    async fn list_devices(
        &self,
        template: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeviceRecord>, StoreError>;
}

/// The SQL of `DeviceStore`, for the pool type of `sql_store!`.
macro_rules! devices_sql {
    ($store:ident, $row:ty) => {
        use super::devices::{DeviceRecord, DeviceState, DeviceStore};

        const DEVICE_COLUMNS: &str = "template, serial, state, note, added_by, added_at";

        fn device_row(r: &$row) -> DeviceRecord {
            let state: String = r.get("state");
            DeviceRecord {
                template: r.get("template"),
                serial: r.get("serial"),
                // the column's CHECK allows these two only
                state: DeviceState::parse(&state).unwrap_or(DeviceState::Deny),
                note: r.get("note"),
                added_by: r.get("added_by"),
                added_at: r.get("added_at"),
            }
        }

        #[async_trait::async_trait]
        impl DeviceStore for $store {
            async fn put_devices(&self, devices: &[DeviceRecord]) -> Result<u64, StoreError> {
                let mut tx = self.pool.begin().await?;
                let mut n = 0;
                for d in devices {
                    n += sqlx::query(
                        "INSERT INTO devices (template, serial, state, note, added_by, added_at)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (template, serial) DO UPDATE SET
                           state = excluded.state, note = excluded.note,
                           added_by = excluded.added_by, added_at = excluded.added_at",
                    )
                    .bind(&d.template)
                    .bind(&d.serial)
                    .bind(d.state.as_str())
                    .bind(&d.note)
                    .bind(&d.added_by)
                    .bind(&d.added_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                Ok(n)
            }

            async fn remove_device(
                &self,
                template: &str,
                serial: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM devices WHERE template = $1 AND serial = $2")
                    .bind(template)
                    .bind(serial)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn find_device(
                &self,
                template: &str,
                serial: &str,
            ) -> Result<Option<DeviceRecord>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE template = $1 AND serial = $2"
                ))
                .bind(template)
                .bind(serial)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(device_row))
            }

            async fn list_devices(
                &self,
                template: Option<&str>,
                limit: u32,
            ) -> Result<Vec<DeviceRecord>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE ($1 IS NULL OR template = $1)
                     ORDER BY template, serial LIMIT $2"
                ))
                .bind(template)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(device_row).collect())
            }
        }
    };
}

pub(crate) use devices_sql;
