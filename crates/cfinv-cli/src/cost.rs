//! What an invalidation costs: the first 1,000 paths per month per AWS account are free, then
//! USD 0.005 per path; a wildcard path counts as one path however many objects it evicts.
//!
//! A single request cannot know how many paths the account already invalidated this month, so
//! the estimate assumes the free tier is used up (the most it can cost) unless the user says
//! how many paths were used (`--paths-this-month`). Amounts are kept in thousandths of a dollar,
//! so the arithmetic is exact.

use serde::Serialize;

/// Paths per month and account that CloudFront does not charge for.
pub const FREE_PATHS_PER_MONTH: u64 = 1000;

/// The price of one path past the free tier, in thousandths of a US dollar (USD 0.005).
pub const PRICE_PER_PATH_MILLI_USD: u64 = 5;

/// The cost of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CostEstimate {
    /// Paths CloudFront bills for this request.
    pub billed_paths: u64,
    /// Paths the account already invalidated this month, when the user said; `None` assumes
    /// the free tier is used up.
    pub paths_this_month: Option<u64>,
    /// Of `billed_paths`, those past the free tier.
    pub charged_paths: u64,
    /// `charged_paths` × USD 0.005, in thousandths of a dollar.
    pub milli_usd: u64,
}

impl CostEstimate {
    /// The amount as `0.015`.
    pub fn usd(&self) -> String {
        format_usd(self.milli_usd)
    }

    /// One sentence naming the assumption.
    pub fn describe(&self) -> String {
        let price = format_usd(PRICE_PER_PATH_MILLI_USD);
        match self.paths_this_month {
            None => format!(
                "USD {} ({} path(s) x USD {price}), assuming this month's 1,000 free paths of the AWS account are used up; USD 0 while the account stays within them",
                self.usd(),
                self.charged_paths,
            ),
            Some(used) => format!(
                "USD {} ({} of {} path(s) past the 1,000 free paths per month, with {used} already used this month; USD {price} per path)",
                self.usd(),
                self.charged_paths,
                self.billed_paths,
            ),
        }
    }
}

/// The cost of invalidating `billed_paths` paths, the account having invalidated
/// `paths_this_month` already (`None`: assume the free tier is used up).
pub fn estimate_cost(billed_paths: u64, paths_this_month: Option<u64>) -> CostEstimate {
    let charged_paths = match paths_this_month {
        None => billed_paths,
        Some(used) => billed_paths.saturating_sub(FREE_PATHS_PER_MONTH.saturating_sub(used)),
    };
    CostEstimate {
        billed_paths,
        paths_this_month,
        charged_paths,
        milli_usd: charged_paths.saturating_mul(PRICE_PER_PATH_MILLI_USD),
    }
}

/// Thousandths of a dollar as `12.345`.
pub fn format_usd(milli_usd: u64) -> String {
    format!("{}.{:03}", milli_usd / 1000, milli_usd % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumes_the_free_tier_is_used_up() {
        let c = estimate_cost(3, None);
        assert_eq!(c.charged_paths, 3);
        assert_eq!(c.usd(), "0.015");
        assert_eq!(estimate_cost(0, None).usd(), "0.000");
        assert_eq!(estimate_cost(1, None).usd(), "0.005");
        assert_eq!(estimate_cost(3000, None).usd(), "15.000");
    }

    #[test]
    fn counts_what_is_left_of_the_free_tier() {
        assert_eq!(estimate_cost(10, Some(0)).charged_paths, 0);
        assert_eq!(estimate_cost(10, Some(990)).charged_paths, 0);
        assert_eq!(estimate_cost(10, Some(995)).charged_paths, 5);
        assert_eq!(estimate_cost(10, Some(995)).usd(), "0.025");
        assert_eq!(estimate_cost(10, Some(1000)).charged_paths, 10);
        assert_eq!(estimate_cost(10, Some(50_000)).charged_paths, 10);
        assert_eq!(estimate_cost(1000, Some(0)).usd(), "0.000");
        assert_eq!(estimate_cost(1001, Some(0)).usd(), "0.005");
    }

    #[test]
    fn the_seed_example() {
        // 500 deploys x 10 paths = 5,000 paths: 4,000 billable x USD 0.005 = USD 20.
        assert_eq!(estimate_cost(5000, Some(0)).usd(), "20.000");
    }

    #[test]
    fn formats_dollars() {
        assert_eq!(format_usd(0), "0.000");
        assert_eq!(format_usd(5), "0.005");
        assert_eq!(format_usd(1234), "1.234");
        assert_eq!(format_usd(20_000), "20.000");
    }

    #[test]
    fn describes_the_assumption() {
        let d = estimate_cost(2, None).describe();
        assert!(d.contains("USD 0.010"), "{d}");
        assert!(d.contains("1,000 free paths"), "{d}");
        assert!(d.contains("used up"), "{d}");
        let d = estimate_cost(10, Some(995)).describe();
        assert!(d.contains("5 of 10"), "{d}");
        assert!(d.contains("995 already used"), "{d}");
    }
}
