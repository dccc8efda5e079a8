//! Invariants checked by the fuzz targets (and by `tests/fuzz_corpus.rs` on
//! the kept corpora and fixed crash inputs).
pub mod checks;
