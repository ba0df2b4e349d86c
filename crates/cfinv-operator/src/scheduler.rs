//! Quota-aware admission: never submit past CloudFront's in-progress quotas per distribution
//! (15 wildcard paths, 3,000 other paths, each independently) when this operator is the only
//! writer, keep the quota full while work waits, and serve waiting objects fairly.
//!
//! What is in flight is read from the controller's cache (objects in phase `InProgress`), plus
//! objects admitted moments ago whose status write has not reached the cache yet. Waiting
//! objects are ordered round-robin across namespaces and oldest first within one, so a
//! namespace that creates a hundred objects cannot starve another that creates one. Writers
//! outside the operator are still handled: CloudFront's `TooManyInvalidationsInProgress` sends
//! the object back to `Queued`.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

use jiff::Timestamp;
use kube::ResourceExt;

use cfinv_api::crd::{CloudFrontInvalidation, Phase};
use cfinv_api::paths;

/// Paths an invalidation holds while in progress, by kind of quota.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub wildcards: u32,
    pub objects: u32,
}

impl Usage {
    /// What a batch takes. A cache tag (`#tag`) takes an individual-path slot: the developer
    /// guide counts each tag item "as one invalidation path" toward "the same concurrent
    /// invalidation limits as path items" without naming the limit, and tags cannot carry the
    /// `*` that defines the wildcard limit (see `cfinv_api::paths::is_tag`).
    pub fn of<S: AsRef<str>>(paths: &[S]) -> Self {
        let wildcards = paths
            .iter()
            .filter(|p| paths::is_wildcard(p.as_ref()))
            .count() as u32;
        Self {
            wildcards,
            objects: paths.len() as u32 - wildcards,
        }
    }

    fn plus(self, other: Usage) -> Usage {
        Usage {
            wildcards: self.wildcards + other.wildcards,
            objects: self.objects + other.objects,
        }
    }

    fn fits_within(self, quota: Usage) -> bool {
        self.wildcards <= quota.wildcards && self.objects <= quota.objects
    }
}

/// CloudFront's in-progress quotas per distribution.
pub const CLOUDFRONT_QUOTA: Usage = Usage {
    wildcards: 15,
    objects: 3000,
};

/// How long an admission counts as in flight before the cache shows the object's status.
const ADMISSION_TTL: Duration = Duration::from_secs(120);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Submit now.
    Admit,
    /// Wait: the quota is full, or objects before it (in the fairness order) come first.
    /// `ahead`: how many waiting objects come before it.
    Wait { in_flight: Usage, ahead: usize },
    /// The request alone exceeds the quota: CloudFront would refuse it forever.
    Never { usage: Usage },
}

/// One object competing for a slot.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub uid: String,
    pub namespace: String,
    pub created: Timestamp,
    pub usage: Usage,
}

impl Candidate {
    /// A waiting object of the cache, with the paths it would submit.
    pub fn of(obj: &CloudFrontInvalidation) -> Option<Self> {
        let normalized = paths::normalize(&obj.spec.paths).ok()?;
        Some(Self {
            uid: obj.uid()?,
            namespace: obj.namespace().unwrap_or_default(),
            created: obj
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
            usage: Usage::of(&normalized.paths),
        })
    }
}

struct Admitted {
    distribution: String,
    namespace: String,
    usage: Usage,
    at: Instant,
}

pub struct Scheduler {
    quota: Usage,
    /// Admitted, not yet seen in the cache as submitted: uid → (distribution, namespace, usage,
    /// when).
    admitted: Mutex<HashMap<String, Admitted>>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new(CLOUDFRONT_QUOTA)
    }
}

impl Scheduler {
    pub fn new(quota: Usage) -> Self {
        Self {
            quota,
            admitted: Mutex::default(),
        }
    }

    /// Decide for `candidate` on `distribution`, given every cached object of that distribution.
    pub fn admit(
        &self,
        distribution: &str,
        candidate: &Candidate,
        cached: &[impl AsRef<CloudFrontInvalidation>],
    ) -> Admission {
        if !candidate.usage.fits_within(self.quota) {
            return Admission::Never {
                usage: candidate.usage,
            };
        }
        let mut admitted = self.admitted.lock().expect("scheduler lock");
        admitted.retain(|_, a| a.at.elapsed() < ADMISSION_TTL);

        let mut in_flight = Usage::default();
        let mut served: BTreeMap<String, usize> = BTreeMap::new();
        let mut waiting = vec![candidate.clone()];
        for obj in cached.iter().map(AsRef::as_ref) {
            let Some(uid) = obj.uid() else { continue };
            let status = obj.status.as_ref();
            let submitted = status.and_then(|s| s.invalidation_id.as_ref()).is_some();
            match obj.phase() {
                Phase::InProgress if submitted => {
                    admitted.remove(&uid);
                    *served
                        .entry(obj.namespace().unwrap_or_default())
                        .or_default() += 1;
                    let sent = status
                        .and_then(|s| s.submitted_paths.as_deref())
                        .unwrap_or(&[]);
                    in_flight = in_flight.plus(Usage::of(sent));
                }
                Phase::Completed | Phase::Failed => {
                    admitted.remove(&uid);
                }
                _ if admitted.contains_key(&uid) || uid == candidate.uid => {}
                _ => waiting.extend(Candidate::of(obj)),
            }
        }
        for (uid, a) in admitted.iter() {
            if a.distribution == distribution && *uid != candidate.uid {
                in_flight = in_flight.plus(a.usage);
                *served.entry(a.namespace.clone()).or_default() += 1;
            }
        }

        // Walk the fairness order, filling the quota; stop at the first that does not fit so
        // a large request is not overtaken forever by small ones.
        let order = fair_order(waiting, &served);
        let ahead = order
            .iter()
            .position(|w| w.uid == candidate.uid)
            .expect("the candidate is in the waiting list");
        let mut filled = in_flight;
        for w in &order[..=ahead] {
            let next = filled.plus(w.usage);
            if !next.fits_within(self.quota) {
                return Admission::Wait { in_flight, ahead };
            }
            filled = next;
        }
        admitted.insert(
            candidate.uid.clone(),
            Admitted {
                distribution: distribution.to_owned(),
                namespace: candidate.namespace.clone(),
                usage: candidate.usage,
                at: Instant::now(),
            },
        );
        Admission::Admit
    }

    /// The candidate's submission did not go through (error or CloudFront's own quota): it no
    /// longer holds a slot.
    pub fn release(&self, uid: &str) {
        self.admitted.lock().expect("scheduler lock").remove(uid);
    }
}

/// Least-served namespace first, oldest first within each: an object's rank is what its
/// namespace already has in flight on the distribution plus its place among that namespace's
/// waiting objects, so a namespace holding 15 slots waits behind one holding none. Ties break
/// on creation time, then uid.
fn fair_order(mut waiting: Vec<Candidate>, served: &BTreeMap<String, usize>) -> Vec<Candidate> {
    waiting.sort_by(|a, b| (a.created, &a.uid).cmp(&(b.created, &b.uid)));
    let mut rank_in_namespace: BTreeMap<String, usize> = BTreeMap::new();
    let mut ranked: Vec<(usize, Candidate)> = waiting
        .into_iter()
        .map(|c| {
            let rank = rank_in_namespace
                .entry(c.namespace.clone())
                .or_insert_with(|| served.get(&c.namespace).copied().unwrap_or(0));
            *rank += 1;
            (*rank, c)
        })
        .collect();
    ranked.sort_by(|(ra, a), (rb, b)| (ra, a.created, &a.uid).cmp(&(rb, b.created, &b.uid)));
    ranked.into_iter().map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests;
