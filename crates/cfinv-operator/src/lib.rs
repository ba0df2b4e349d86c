//! The operator: a kube-runtime controller that turns `CloudFrontInvalidation` objects into
//! CloudFront invalidations ([`controller`]), the quota-aware [`scheduler`], and the process
//! around it ([`run`]: leader election, health and metrics endpoints, tenancy, shutdown).

pub mod controller;
pub mod health;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod scheduler;
pub mod tenancy;
