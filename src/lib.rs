//! cloudfront-invalidation-operator: CloudFrontInvalidation resources in, CloudFront
//! invalidations out. The library holds every piece; `src/main.rs` is one binary with
//! subcommands (`run`, `crd`, `simulator`, `sandbox`, `invalidate`, ...).

pub mod bench;
pub mod cli;
pub mod cloudfront;
pub mod controller;
pub mod controlplane;
pub mod crd;
pub mod health;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod paths;
pub mod polling;
pub mod run;
pub mod sandbox;
pub mod scheduler;
pub mod simulator;
pub mod telemetry;
pub mod tenancy;
