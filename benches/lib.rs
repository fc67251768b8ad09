//! Nothing here: the benchmarks are crypto.rs, bulk.rs and enroll.rs (`cargo bench -p
//! estd-benches`).
