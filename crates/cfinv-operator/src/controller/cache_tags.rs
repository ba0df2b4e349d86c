//! Whether tag items can match anything on a distribution: its `CacheTagConfig`, read with
//! `GetDistributionConfig` after a submission that sent tags, at most once per distribution per
//! [`LIFETIME`], in the background. Optional all the way: the call needs
//! `cloudfront:GetDistribution`, which the operator does not require, so any error only means
//! "unknown" (logged once, no Event), and neither the submission nor the status waits for it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use jiff::{SignedDuration, Timestamp};
use kube::{
    Resource,
    runtime::events::{Event, EventType},
};
use tokio::sync::OnceCell;
use tracing::{Instrument, Span, debug, info, warn};

use super::Context;
use cfinv_api::crd::{CloudFrontInvalidation, Target};
use cfinv_api::paths;
use cfinv_cloudfront::{CloudFront, Disposition, classify};

/// How long an answer (or a refusal, such as AccessDenied) is reused before the distribution is
/// asked again: long enough that a busy distribution costs one call an hour, short enough that
/// adding a `CacheTagConfig` (or granting `cloudfront:GetDistribution`) is noticed the same hour.
pub const LIFETIME: Duration = Duration::from_secs(3600);

/// How long "unknown" after a transient error (throttled, 5xx, unreachable: retryable in the
/// error table) is reused: a throttled minute must not hide a missing `CacheTagConfig` for an
/// hour. At most [`LIFETIME`].
pub const TRANSIENT_LIFETIME: Duration = Duration::from_secs(60);

/// The IAM action GetDistributionConfig needs: granted by the optional statement of
/// `deploy/iam-policy.json` (a test keeps the two equal).
pub const IAM_ACTION: &str = "cloudfront:GetDistribution";

/// The Event reason of the warning.
pub const REASON: &str = "NoCacheTagConfig";

/// What is known of a distribution's `CacheTagConfig`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheTags {
    /// Tags are read from this origin response header.
    Configured { header: String },
    /// No `CacheTagConfig`: tag items match nothing.
    Absent,
    /// The configuration could not be read (denied, throttled, unreachable...).
    Unknown,
}

/// The answers per distribution id, each reused for the cache's lifetime. Lookups that arrive
/// while the distribution is being asked wait for that one call.
pub struct CacheTagConfigs {
    lifetime: SignedDuration,
    transient: SignedDuration,
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    asked: Timestamp,
    answer: Arc<OnceCell<Answer>>,
}

/// An answer and how long it is reused.
struct Answer {
    tags: CacheTags,
    keep: SignedDuration,
}

impl CacheTagConfigs {
    pub fn new(lifetime: Duration) -> Self {
        let lifetime = SignedDuration::try_from(lifetime).unwrap_or(SignedDuration::MAX);
        Self {
            lifetime,
            transient: SignedDuration::try_from(TRANSIENT_LIFETIME)
                .unwrap_or(SignedDuration::MAX)
                .min(lifetime),
            entries: Mutex::default(),
        }
    }

    /// The distribution's `CacheTagConfig` as of `now`: asked once per lifetime (once per
    /// [`TRANSIENT_LIFETIME`] while the answers are transient errors).
    pub async fn lookup(
        &self,
        api: &dyn CloudFront,
        distribution: &str,
        now: Timestamp,
    ) -> CacheTags {
        let answer = {
            let mut entries = self.entries.lock().expect("cache-tag lock");
            // Expired entries go, so memory follows the distributions in use. One still being
            // asked has no answer yet and stays.
            entries.retain(|_, e| {
                now.duration_since(e.asked) < e.answer.get().map_or(self.lifetime, |a| a.keep)
            });
            entries
                .entry(distribution.to_owned())
                .or_insert_with(|| Entry {
                    asked: now,
                    answer: Arc::default(),
                })
                .answer
                .clone()
        };
        answer
            .get_or_init(|| ask(api, distribution, self.lifetime, self.transient))
            .await
            .tags
            .clone()
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.entries.lock().expect("cache-tag lock").len()
    }
}

/// The one call; what it found is logged here, once per distribution per lifetime.
async fn ask(
    api: &dyn CloudFront,
    distribution: &str,
    lifetime: SignedDuration,
    transient: SignedDuration,
) -> Answer {
    let known = |tags| Answer {
        tags,
        keep: lifetime,
    };
    match api.get_distribution_config(distribution).await {
        Ok(config) => match config.cache_tag_header {
            Some(header) => {
                debug!(
                    distribution,
                    header, "distribution reads cache tags from the origin header {header}"
                );
                known(CacheTags::Configured { header })
            }
            None => {
                info!(
                    distribution,
                    "distribution {distribution} has no CacheTagConfig: tag items sent to it \
                     match nothing"
                );
                known(CacheTags::Absent)
            }
        },
        Err(error) => {
            // The error table decides: a refusal (AccessDenied) stands until IAM changes, a
            // throttle or an outage passes.
            let keep = match classify(&error) {
                Disposition::Fail(_) => lifetime,
                Disposition::Retry | Disposition::Queue => transient,
            };
            warn!(
                distribution,
                %error,
                "could not read the CacheTagConfig of distribution {distribution} \
                 (GetDistributionConfig, optional IAM action cloudfront:GetDistribution): \
                 whether its tag items match anything is unknown, so no warning is given; \
                 asking again in {}",
                humantime::format_duration(keep.unsigned_abs())
            );
            Answer {
                tags: CacheTags::Unknown,
                keep,
            }
        }
    }
}

/// The distribution to ask about a submission, if it sent tags. A tenant's own distribution
/// is not known to the operator (CreateInvalidationForDistributionTenant does not name it, and
/// GetDistributionTenant would be another call and permission), so tenants are not checked.
pub(super) fn distribution_to_check(target: &Target, items: &[String]) -> Option<String> {
    match target {
        Target::Distribution(id) if items.iter().any(|i| paths::is_tag(i)) => Some(id.clone()),
        _ => None,
    }
}

/// How many tag items the warning names before "and N more".
const TAGS_NAMED: usize = 5;

/// The Warning Event for tag items sent to a distribution without a `CacheTagConfig`.
pub(super) fn warning(distribution: &str, items: &[String]) -> Event {
    let tags: Vec<&str> = items
        .iter()
        .map(String::as_str)
        .filter(|i| paths::is_tag(i))
        .collect();
    let mut named = tags
        .iter()
        .take(TAGS_NAMED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if tags.len() > TAGS_NAMED {
        named.push_str(&format!(" and {} more", tags.len() - TAGS_NAMED));
    }
    Event {
        type_: EventType::Warning,
        reason: REASON.to_owned(),
        note: Some(format!(
            "distribution {distribution} has no CacheTagConfig, so the {} tag item(s) sent \
             ({named}) match nothing there; CloudFront still bills them and the invalidation \
             completes as usual. Give the distribution a CacheTagConfig naming the origin header \
             that carries the tags (x-amz-meta-cache-tag for S3 object metadata); see \
             docs/tags-and-tenants.md",
            tags.len()
        )),
        action: "Invalidate".to_owned(),
        secondary: None,
    }
}

/// Look the distribution up in the background and warn on the object when its tags match
/// nothing. Nothing waits for it; a lost Event is only logged.
pub(super) fn spawn_check(
    ctx: &Arc<Context>,
    obj: &CloudFrontInvalidation,
    distribution: String,
    items: Vec<String>,
) {
    let ctx = ctx.clone();
    let reference = obj.object_ref(&());
    let now = ctx.now();
    let check = async move {
        let known = ctx
            .cloudfront
            .cache_tags
            .lookup(&*ctx.cloudfront.api, &distribution, now)
            .await;
        if known != CacheTags::Absent {
            return;
        }
        let event = warning(&distribution, &items);
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(error = %e, reason = REASON, "could not publish event");
        }
    };
    tokio::spawn(check.instrument(Span::current()));
}
