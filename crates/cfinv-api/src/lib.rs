//! The `CloudFrontInvalidation` resource and CloudFront's path rules: the types every other
//! crate shares, as pure data and functions (no I/O), so they can be checked in isolation.

pub mod batch;
pub mod crd;
pub mod paths;
