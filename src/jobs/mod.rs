//! Bulk certificate requests: the CSV, the job state machine and its workers.

pub mod csv;
