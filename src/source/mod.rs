//! I/O: one module per source. Each returns raw facts; analysis lives in [`crate::catalog`].

pub mod postgres;
pub mod s3;
pub mod tls;
