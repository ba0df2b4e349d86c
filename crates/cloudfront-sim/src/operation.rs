//! The CloudFront operations the simulator answers.

use serde::{Deserialize, Serialize};

/// One API operation; the name is the one the API reference and the SDKs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// `POST /2020-05-31/distribution/{Id}/invalidation`
    CreateInvalidation,
    /// `GET /2020-05-31/distribution/{Id}/invalidation/{InvalidationId}`
    GetInvalidation,
    /// `GET /2020-05-31/distribution/{Id}/invalidation`
    ListInvalidations,
    /// `GET /2020-05-31/distribution/{Id}`
    GetDistribution,
    /// `GET /2020-05-31/distribution/{Id}/config`
    GetDistributionConfig,
    /// `POST /2020-05-31/distribution-tenant/{Id}/invalidation`
    CreateInvalidationForDistributionTenant,
    /// `GET /2020-05-31/distribution-tenant/{DistributionTenantId}/invalidation/{Id}`
    GetInvalidationForDistributionTenant,
    /// `GET /2020-05-31/distribution-tenant/{Id}/invalidation`
    ListInvalidationsForDistributionTenant,
}

impl Operation {
    /// Every operation, in a fixed order.
    pub const ALL: [Operation; 8] = [
        Operation::CreateInvalidation,
        Operation::GetInvalidation,
        Operation::ListInvalidations,
        Operation::GetDistribution,
        Operation::GetDistributionConfig,
        Operation::CreateInvalidationForDistributionTenant,
        Operation::GetInvalidationForDistributionTenant,
        Operation::ListInvalidationsForDistributionTenant,
    ];

    /// The operation's name, e.g. `CreateInvalidation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CreateInvalidation => "CreateInvalidation",
            Operation::GetInvalidation => "GetInvalidation",
            Operation::ListInvalidations => "ListInvalidations",
            Operation::GetDistribution => "GetDistribution",
            Operation::GetDistributionConfig => "GetDistributionConfig",
            Operation::CreateInvalidationForDistributionTenant => {
                "CreateInvalidationForDistributionTenant"
            }
            Operation::GetInvalidationForDistributionTenant => {
                "GetInvalidationForDistributionTenant"
            }
            Operation::ListInvalidationsForDistributionTenant => {
                "ListInvalidationsForDistributionTenant"
            }
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Operation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = Operation::ALL.iter().map(|op| op.as_str()).collect();
                format!(
                    "unknown operation {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}
