//! Quota-aware admission: never submit past CloudFront's in-progress quotas per distribution
//! (15 wildcard paths, 3,000 other paths, each independently) as far as this operator can see,
//! keep the quota full while work waits, and serve waiting objects fairly.
//!
//! The scheduler keeps its own index of every object, fed by the controller's watch
//! ([`Scheduler::observe`]): per distribution, what is in flight (summed once per change, from
//! the objects' status, so a restarted operator counts what its predecessor submitted) and the
//! waiting objects in fairness order, with each object's paths normalised once per spec
//! generation. It holds a few fields per object, never the objects themselves.
//!
//! What counts as in flight: objects CloudFront accepted that have not finished, plus objects
//! that timed out on our side while CloudFront still reports them `InProgress`
//! (`status.cloudFrontStatus`), plus objects admitted moments ago whose status write has not
//! come back through the watch yet.
//!
//! Fairness: least-served namespace first, oldest first within each. The two quotas are two
//! lanes: a request waits only behind requests that compete for the same quota, so an
//! object-path request never waits behind a wildcard request that cannot fit, and the reverse.
//! Within a lane the first request that does not fit stops the lane, so a large request is not
//! overtaken forever by small ones.
//!
//! Decisions are made when something changes (a slot frees, an object arrives), not when a
//! waiting object asks: objects admitted that way are woken through the controller's trigger
//! stream ([`Scheduler::wakes`]). Writers outside the operator are still handled: CloudFront's
//! `TooManyInvalidationsInProgress` sends the object back to `Queued` ([`Scheduler::refused`]).

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::channel::mpsc;
use jiff::Timestamp;
use kube::{
    ResourceExt,
    runtime::{reflector::ObjectRef, watcher},
};

use cfinv_api::batch::CloudFrontInvalidationBatch;
use cfinv_api::crd::{CloudFrontInvalidation, Phase};
use cfinv_api::paths;

/// Paths an invalidation holds while in progress, by kind of quota.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    fn minus(self, other: Usage) -> Usage {
        Usage {
            wildcards: self.wildcards.saturating_sub(other.wildcards),
            objects: self.objects.saturating_sub(other.objects),
        }
    }

    fn fits_within(self, quota: Usage) -> bool {
        self.wildcards <= quota.wildcards && self.objects <= quota.objects
    }

    fn lane(self, lane: Lane) -> u32 {
        match lane {
            Lane::Wildcard => self.wildcards,
            Lane::Object => self.objects,
        }
    }

    fn lanes(self) -> impl Iterator<Item = Lane> {
        LANES.into_iter().filter(move |l| self.lane(*l) > 0)
    }
}

/// CloudFront's in-progress quotas per distribution.
pub const CLOUDFRONT_QUOTA: Usage = Usage {
    wildcards: 15,
    objects: 3000,
};

/// How long an admission counts as in flight before the watch shows the object submitted (or
/// the admitted object comes to use it).
const ADMISSION_TTL: Duration = Duration::from_secs(120);
/// After CloudFront refused a submission as over its quota (another writer), admitted objects
/// of that distribution are not woken for this long; each retries on its own backoff instead.
const REFUSED_PAUSE: Duration = Duration::from_secs(5);
/// An object whose submission just failed is not woken for this long: it retries on its own
/// backoff, and a wake would skip that backoff.
const NO_WAKE_AFTER_RELEASE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Lane {
    Wildcard,
    Object,
}
const LANES: [Lane; 2] = [Lane::Wildcard, Lane::Object];

enum Known {
    Waiting,
    InFlight,
    Finished,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Submit now.
    Admit,
    /// Wait: the quota is full, or objects before it (in the fairness order) come first. The
    /// object is woken when its turn comes.
    Wait { in_flight: Usage },
    /// The request alone exceeds the quota: CloudFront would refuse it forever.
    Never { usage: Usage },
}

/// Objects to merge into one batch (coalescing): the admitted object and others of its
/// namespace and target waiting with it, as far as the quota allows. Each member's slot is
/// held by the batch from now on.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The batch's name (chosen by the caller, unique).
    pub name: String,
    /// Oldest first.
    pub members: Vec<PlannedMember>,
    /// The merged items.
    pub items: Vec<String>,
    /// The escalation policy replaced the members' paths by `/*`.
    pub escalated: bool,
}

#[derive(Clone, Debug)]
pub struct PlannedMember {
    pub uid: String,
    pub name: String,
    pub created: Timestamp,
    /// The resourceVersion the plan saw: the claim is conditional on it.
    pub resource_version: Option<String>,
    /// Its normalised items.
    pub paths: Arc<Vec<String>>,
}

/// One object competing for a slot.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub created: Timestamp,
    pub usage: Usage,
}

impl Candidate {
    /// The object as it would be submitted, with the usage of its normalised paths.
    pub fn new(obj: &CloudFrontInvalidation, usage: Usage) -> Option<Self> {
        Some(Self {
            uid: obj.uid()?,
            name: obj.name_any(),
            namespace: obj.namespace().unwrap_or_default(),
            created: created(obj),
            usage,
        })
    }
}

fn created(obj: &CloudFrontInvalidation) -> Timestamp {
    obj.metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

/// What the index keeps of one object.
struct Entry {
    distribution: Arc<str>,
    phase: Phase,
    /// The watch's list generation that last saw the object (a relist drops the others).
    epoch: u64,
    role: Role,
}

enum Role {
    /// Not submitted yet: competes for a slot.
    Waiting {
        name: String,
        namespace: String,
        created: Timestamp,
        generation: Option<i64>,
        usage: Usage,
        merge: Option<Mergeable>,
    },
    /// Holds part of CloudFront's quota.
    InFlight {
        namespace: String,
        usage: Usage,
        billed: u32,
        /// Still ours to poll (not a timed-out one CloudFront keeps working on).
        polling: bool,
    },
    /// Finished, or never going to run: holds nothing.
    Idle,
}

/// What planning a batch needs of a waiting object that may be merged (no
/// `spec.callerReference`, never attempted on its own).
#[derive(Clone, Debug)]
struct Mergeable {
    resource_version: Option<String>,
    paths: Arc<Vec<String>>,
}

struct WaitingRef {
    name: String,
    namespace: String,
    created: Timestamp,
    merge: Option<Mergeable>,
    usage: Usage,
    /// It has reconciled and been told to wait (phase Queued): it needs waking. One not
    /// reconciled yet comes by itself, and waking it too would reconcile it twice.
    queued: bool,
}

struct Grant {
    namespace: String,
    usage: Usage,
    /// The batch this member's slot went to (its usage is the batch's grant then).
    batch: Option<String>,
    at: Instant,
    /// The admitted object has been told (woken), or asked itself.
    told: bool,
}

/// Waiting objects of one namespace in one lane, oldest first.
type Queue = BTreeMap<(Timestamp, String), Usage>;

#[derive(Default)]
struct Dist {
    members: usize,
    in_flight: Usage,
    in_flight_count: i64,
    billed: i64,
    /// Objects in phase Queued (told to wait for a quota slot), for metrics.
    queued: i64,
    polling: usize,
    /// In-flight and admitted objects per namespace, per lane (the fairness order's base).
    served: HashMap<String, [usize; 2]>,
    waiting: [HashMap<String, Queue>; 2],
    /// Waiting objects by uid (name and namespace, to wake them).
    waiting_refs: HashMap<String, WaitingRef>,
    grants: HashMap<String, Grant>,
    no_wake: HashMap<String, Instant>,
    paused_until: Option<Instant>,
    dirty: bool,
}

fn lane_index(lane: Lane) -> usize {
    match lane {
        Lane::Wildcard => 0,
        Lane::Object => 1,
    }
}

impl Dist {
    fn serve(&mut self, namespace: &str, usage: Usage, delta: isize) {
        let served = self.served.entry(namespace.to_owned()).or_default();
        for lane in usage.lanes() {
            let n = &mut served[lane_index(lane)];
            *n = n.saturating_add_signed(delta);
        }
        if *served == [0, 0] {
            self.served.remove(namespace);
        }
    }

    fn add_grant(&mut self, uid: &str, namespace: &str, usage: Usage, told: bool) {
        self.add_grant_for(uid, namespace, usage, told, None);
    }

    fn add_grant_for(
        &mut self,
        uid: &str,
        namespace: &str,
        usage: Usage,
        told: bool,
        batch: Option<String>,
    ) {
        self.serve(namespace, usage, 1);
        self.grants.insert(
            uid.to_owned(),
            Grant {
                namespace: namespace.to_owned(),
                usage,
                batch,
                at: Instant::now(),
                told,
            },
        );
    }

    fn drop_grant(&mut self, uid: &str) -> bool {
        match self.grants.remove(uid) {
            Some(g) => {
                self.serve(&g.namespace, g.usage, -1);
                self.dirty = true;
                true
            }
            None => false,
        }
    }

    fn account_in_flight(
        &mut self,
        namespace: &str,
        usage: Usage,
        billed: u32,
        polling: bool,
        sign: isize,
    ) {
        self.in_flight = if sign > 0 {
            self.in_flight.plus(usage)
        } else {
            self.in_flight.minus(usage)
        };
        self.in_flight_count += sign as i64;
        self.billed += sign as i64 * i64::from(billed);
        if polling {
            self.polling = self.polling.saturating_add_signed(sign);
        }
        self.serve(namespace, usage, sign);
        self.dirty = true;
    }

    fn filled(&self) -> Usage {
        self.grants
            .values()
            .fold(self.in_flight, |sum, g| sum.plus(g.usage))
    }

    /// Decide who may go now: walk each lane in fairness order, filling the quota, until the
    /// first request that does not fit. A request is admitted when it is within that prefix in
    /// every lane it uses. Returns the newly admitted uids.
    fn pump(&mut self, quota: Usage) -> Vec<String> {
        self.dirty = false;
        let now = Instant::now();
        let expired: Vec<String> = self
            .grants
            .iter()
            .filter(|(_, g)| now.duration_since(g.at) >= ADMISSION_TTL)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in expired {
            self.drop_grant(&uid);
        }
        self.no_wake
            .retain(|_, at| now.duration_since(*at) < NO_WAKE_AFTER_RELEASE);
        let filled = self.filled();
        let mut prefixes: [HashSet<String>; 2] = Default::default();
        for lane in LANES {
            let i = lane_index(lane);
            let mut used = filled.lane(lane);
            let limit = quota.lane(lane);
            walk(
                &self.waiting[i],
                &self.served,
                i,
                &self.grants,
                |uid, usage| {
                    let next = used + usage.lane(lane);
                    if next > limit {
                        return false;
                    }
                    used = next;
                    prefixes[i].insert(uid.to_owned());
                    true
                },
            );
        }
        let mut admitted = Vec::new();
        let candidates: Vec<String> = prefixes.iter().flatten().cloned().collect();
        for uid in candidates {
            let Some((namespace, usage)) = self
                .waiting_refs
                .get(&uid)
                .map(|w| (w.namespace.clone(), w.usage))
            else {
                continue;
            };
            if self.grants.contains_key(&uid) {
                continue;
            }
            if usage
                .lanes()
                .all(|lane| prefixes[lane_index(lane)].contains(&uid))
            {
                self.add_grant(&uid, &namespace, usage, false);
                admitted.push(uid);
            }
        }
        admitted
    }

    /// Admitted objects not told yet, and not to be left alone: the ones to wake.
    fn wake_list(&mut self) -> Vec<ObjectRef<CloudFrontInvalidation>> {
        if self.paused_until.is_some_and(|t| Instant::now() < t) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (uid, grant) in &mut self.grants {
            if grant.told || self.no_wake.contains_key(uid) {
                continue;
            }
            if let Some(w) = self.waiting_refs.get(uid).filter(|w| w.queued) {
                grant.told = true;
                out.push(ObjectRef::new(&w.name).within(&w.namespace));
            }
        }
        out
    }
}

/// The fairness order of one lane, as a merge of the namespaces' queues: an object's rank is
/// what its namespace already holds in the lane plus its place among that namespace's waiting
/// objects, so a namespace holding 15 slots waits behind one holding none. Ties break on
/// creation time, then uid. Admitted objects are skipped. `visit` returns false to stop.
fn walk(
    queues: &HashMap<String, Queue>,
    served: &HashMap<String, [usize; 2]>,
    lane: usize,
    grants: &HashMap<String, Grant>,
    mut visit: impl FnMut(&str, Usage) -> bool,
) {
    type Cursor<'a> =
        std::iter::Peekable<std::collections::btree_map::Iter<'a, (Timestamp, String), Usage>>;
    let mut cursors: Vec<(usize, Cursor<'_>)> = Vec::with_capacity(queues.len());
    let mut heap = BinaryHeap::new();
    let skip_granted = |c: &mut Cursor<'_>| {
        while c
            .peek()
            .is_some_and(|((_, uid), _)| grants.contains_key(uid))
        {
            c.next();
        }
    };
    for (ns, queue) in queues {
        let base = served.get(ns).map_or(0, |s| s[lane]);
        let mut cursor = queue.iter().peekable();
        skip_granted(&mut cursor);
        if let Some(((created, uid), _)) = cursor.peek() {
            heap.push(Reverse((base + 1, *created, uid.as_str(), cursors.len())));
        }
        cursors.push((base + 1, cursor));
    }
    while let Some(Reverse((_, _, _, i))) = heap.pop() {
        let (rank, cursor) = &mut cursors[i];
        let Some(((_, uid), usage)) = cursor.next() else {
            continue;
        };
        if !visit(uid, *usage) {
            return;
        }
        *rank += 1;
        skip_granted(cursor);
        if let Some(((created, uid), _)) = cursor.peek() {
            heap.push(Reverse((*rank, *created, uid.as_str(), i)));
        }
    }
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    dists: HashMap<Arc<str>, Dist>,
    phases: [i64; 5],
    epoch: u64,
    /// A watch feeds the index (unit tests without one admit on the scheduler's own record).
    watching: bool,
    /// The watch's first list is complete: before that, what is in flight is unknown.
    synced: bool,
    /// Coalescing is on: batch records hold quota too, and nothing is admitted before their
    /// watch's first list is in.
    batches_expected: bool,
    batches_synced: bool,
    batch_epoch: u64,
    /// Live (unfinished) batches by `namespace/name`.
    batches: HashMap<String, BatchEntry>,
}

/// What the index keeps of a live batch record: the quota it holds.
struct BatchEntry {
    distribution: Arc<str>,
    namespace: String,
    usage: Usage,
    billed: u32,
    epoch: u64,
}

/// The grant key of a batch (never a uid: those have no `/`).
fn batch_key(namespace: &str, name: &str) -> String {
    format!("batch:{namespace}/{name}")
}

fn phase_index(phase: Phase) -> usize {
    match phase {
        Phase::Pending => 0,
        Phase::Queued => 1,
        Phase::InProgress => 2,
        Phase::Completed => 3,
        Phase::Failed => 4,
    }
}

const PHASES: [Phase; 5] = [
    Phase::Pending,
    Phase::Queued,
    Phase::InProgress,
    Phase::Completed,
    Phase::Failed,
];

impl State {
    /// Whether what is in flight is known (the first lists are in).
    fn ready(&self) -> bool {
        (self.synced || !self.watching) && (self.batches_synced || !self.batches_expected)
    }

    fn put_batch(&mut self, key: String, entry: Option<BatchEntry>) -> Option<Arc<str>> {
        let mut touched = None;
        if let Some(old) = self.batches.remove(&key) {
            let d = self.dist(&old.distribution);
            d.account_in_flight(&old.namespace, old.usage, old.billed, true, -1);
            touched = Some(old.distribution.clone());
            self.prune(&old.distribution);
        }
        if let Some(entry) = entry {
            let d = self.dist(&entry.distribution);
            d.account_in_flight(&entry.namespace, entry.usage, entry.billed, true, 1);
            // Recorded: the batch's own usage replaces the planner's reservation.
            d.drop_grant(&key);
            touched = Some(entry.distribution.clone());
            self.batches.insert(key, entry);
        }
        touched
    }

    fn prune(&mut self, distribution: &Arc<str>) {
        if self
            .dists
            .get(distribution)
            .is_some_and(|d| d.members == 0 && d.grants.is_empty() && d.in_flight_count == 0)
        {
            self.dists.remove(distribution);
        }
    }

    fn dist(&mut self, distribution: &Arc<str>) -> &mut Dist {
        self.dists.entry(distribution.clone()).or_default()
    }

    fn intern(&self, distribution: &str) -> Arc<str> {
        self.dists
            .get_key_value(distribution)
            .map_or_else(|| Arc::from(distribution), |(k, _)| k.clone())
    }

    /// Count `entry` in (sign 1) or out (sign -1) of its distribution's sums.
    fn account(&mut self, uid: &str, entry: &Entry, sign: isize) {
        let p = &mut self.phases[phase_index(entry.phase)];
        *p += sign as i64;
        let d = self.dist(&entry.distribution);
        d.members = d.members.saturating_add_signed(sign);
        if entry.phase == Phase::Queued {
            d.queued += sign as i64;
        }
        match &entry.role {
            Role::Waiting {
                name,
                namespace,
                created,
                usage,
                merge,
                ..
            } => {
                for lane in usage.lanes() {
                    let queues = &mut d.waiting[lane_index(lane)];
                    if sign > 0 {
                        queues
                            .entry(namespace.clone())
                            .or_default()
                            .insert((*created, uid.to_owned()), *usage);
                    } else if let Some(q) = queues.get_mut(namespace) {
                        q.remove(&(*created, uid.to_owned()));
                        if q.is_empty() {
                            queues.remove(namespace);
                        }
                    }
                }
                if sign > 0 {
                    d.waiting_refs.insert(
                        uid.to_owned(),
                        WaitingRef {
                            name: name.clone(),
                            namespace: namespace.clone(),
                            created: *created,
                            merge: merge.clone(),
                            usage: *usage,
                            queued: entry.phase == Phase::Queued,
                        },
                    );
                } else {
                    d.waiting_refs.remove(uid);
                }
                d.dirty = true;
            }
            Role::InFlight {
                namespace,
                usage,
                billed,
                polling,
            } => d.account_in_flight(namespace, *usage, *billed, *polling, sign),
            Role::Idle => {}
        }
        if d.members == 0 && d.grants.is_empty() && d.in_flight_count == 0 {
            self.dists.remove(&entry.distribution);
        }
    }

    fn upsert(&mut self, obj: &CloudFrontInvalidation, epoch: u64) -> Option<Arc<str>> {
        let uid = obj.uid()?;
        let entry = self.entry_for(obj, self.entries.get(&uid), epoch);
        Some(self.put(uid, entry))
    }

    /// Replace what the index holds for `uid`.
    fn put(&mut self, uid: String, entry: Entry) -> Arc<str> {
        let old = self.entries.remove(&uid);
        let dist = entry.distribution.clone();
        if let Some(old) = &old {
            self.account(&uid, old, -1);
            if old.distribution != entry.distribution
                && let Some(d) = self.dists.get_mut(&old.distribution)
            {
                d.drop_grant(&uid);
            }
        }
        self.account(&uid, &entry, 1);
        let d = self.dist(&dist);
        match entry.role {
            // Submitted (its usage is counted as in flight now) or finished: the admission is used.
            Role::InFlight { .. } | Role::Idle => {
                d.drop_grant(&uid);
            }
            Role::Waiting { .. } => {
                // It just reported waiting: if admitted meanwhile, it is to be woken.
                if entry.phase == Phase::Queued
                    && old.as_ref().is_some_and(|o| o.phase != Phase::Queued)
                    && let Some(g) = d.grants.get_mut(&uid)
                {
                    g.told = false;
                }
            }
        }
        self.entries.insert(uid, entry);
        dist
    }

    fn remove(&mut self, uid: &str) -> Option<Arc<str>> {
        let old = self.entries.remove(uid)?;
        self.account(uid, &old, -1);
        let dist = old.distribution.clone();
        if let Some(d) = self.dists.get_mut(&dist) {
            d.drop_grant(uid);
            d.no_wake.remove(uid);
        }
        self.prune(&dist);
        Some(dist)
    }

    fn entry_for(&self, obj: &CloudFrontInvalidation, old: Option<&Entry>, epoch: u64) -> Entry {
        let status = obj.status.as_ref();
        let phase = obj.phase();
        let submitted = status.and_then(|s| s.invalidation_id.as_ref()).is_some();
        let namespace = obj.namespace().unwrap_or_default();
        // Keyed as the reconcile admits it: where it was (or is being) submitted, a distribution
        // or a tenant.
        let distribution = self.intern(crate::controller::submitted_target_id(obj));
        let in_flight = |polling: bool| {
            let sent = status.and_then(|s| s.submitted_paths.as_deref());
            let usage = match sent {
                Some(sent) => Usage::of(sent),
                None => spec_usage(obj).unwrap_or_default(),
            };
            Role::InFlight {
                namespace: namespace.clone(),
                usage,
                billed: status.and_then(|s| s.billed_paths).unwrap_or_default(),
                polling,
            }
        };
        let claimed = status.and_then(|s| s.batch.as_ref()).is_some();
        let role = match phase {
            Phase::Completed => Role::Idle,
            // A batch member: the batch holds its share of the quota.
            _ if claimed => Role::Idle,
            Phase::Failed => {
                let cloudfront_running = status
                    .and_then(|s| s.cloud_front_status.as_deref())
                    .is_some_and(|s| s == "InProgress");
                if submitted && cloudfront_running {
                    in_flight(false)
                } else {
                    Role::Idle
                }
            }
            _ if submitted => in_flight(true),
            _ => {
                let generation = obj.metadata.generation;
                // The spec is what changes the usage: normalise once per generation.
                let cached = old.and_then(|o| match &o.role {
                    Role::Waiting {
                        generation: g,
                        usage,
                        merge,
                        ..
                    } if *g == generation && o.distribution == distribution => {
                        Some((*usage, merge.as_ref().map(|m| m.paths.clone())))
                    }
                    _ => None,
                });
                let mergeable = obj.spec.caller_reference.is_none()
                    && status.and_then(|s| s.caller_reference.as_ref()).is_none();
                let normalised = cached.or_else(|| {
                    spec_paths(obj).map(|p| (Usage::of(&p), mergeable.then(|| Arc::new(p))))
                });
                match normalised {
                    Some((usage, paths)) if usage.fits_within(CLOUDFRONT_QUOTA) => Role::Waiting {
                        name: obj.name_any(),
                        namespace: namespace.clone(),
                        created: created(obj),
                        generation,
                        usage,
                        merge: paths.filter(|_| mergeable).map(|paths| Mergeable {
                            resource_version: obj.metadata.resource_version.clone(),
                            paths,
                        }),
                    },
                    // Invalid or too large: reconcile fails it; it must not hold a lane.
                    _ => Role::Idle,
                }
            }
        };
        Entry {
            distribution,
            phase,
            epoch,
            role,
        }
    }
}

fn spec_usage(obj: &CloudFrontInvalidation) -> Option<Usage> {
    spec_paths(obj).map(|p| Usage::of(&p))
}

fn spec_paths(obj: &CloudFrontInvalidation) -> Option<Vec<String>> {
    paths::normalize(&obj.spec.paths).ok().map(|n| n.paths)
}

/// What is in flight on one distribution, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InFlight {
    pub invalidations: i64,
    pub billed_paths: i64,
    /// The wildcard paths among them (CloudFront's quota of 15, apart from the 3,000 others).
    pub wildcard_paths: i64,
}

/// Counts over the index, for metrics (computed without visiting objects).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub phases: Vec<(Phase, i64)>,
    pub in_flight: BTreeMap<String, InFlight>,
    /// Objects in phase Queued, per distribution that has any.
    pub queued: BTreeMap<String, i64>,
}

pub struct Scheduler {
    quota: Usage,
    state: Mutex<State>,
    wakes: Mutex<Option<mpsc::UnboundedSender<ObjectRef<CloudFrontInvalidation>>>>,
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
            state: Mutex::default(),
            wakes: Mutex::default(),
        }
    }

    /// A stream of objects whose turn has come, for the controller's `reconcile_on`. A new call
    /// replaces the previous stream (a new controller after a leader change).
    pub fn wakes(&self) -> mpsc::UnboundedReceiver<ObjectRef<CloudFrontInvalidation>> {
        let (tx, rx) = mpsc::unbounded();
        *self.wakes.lock().expect("wakes lock") = Some(tx);
        rx
    }

    /// Forget everything: a new watch (a new controller, after a leader change) rebuilds the
    /// index from its first list, and admissions of an earlier term are void.
    pub fn reset(&self) {
        *self.state.lock().expect("scheduler lock") = State::default();
    }

    /// Coalescing is on: batch records are watched too ([`Scheduler::observe_batch`]), and
    /// nothing is admitted before their first list is in (they hold quota).
    pub fn expect_batches(&self) {
        self.state.lock().expect("scheduler lock").batches_expected = true;
    }

    /// Whether the batch records' first list is in.
    pub fn batches_synced(&self) -> bool {
        self.state.lock().expect("scheduler lock").batches_synced
    }

    /// Whether the object is gone or finished, as the index last saw it.
    pub fn finished_or_gone(&self, uid: &str) -> bool {
        let state = self.state.lock().expect("scheduler lock");
        state.entries.get(uid).is_none_or(|e| e.phase.is_terminal())
    }

    /// Feed one event of the batch records' watch into the index: a live batch holds its
    /// items' share of the quota until CloudFront finished it. A change wakes its members.
    pub fn observe_batch(&self, event: &watcher::Event<CloudFrontInvalidationBatch>) {
        let mut state = self.state.lock().expect("scheduler lock");
        let mut wake = Vec::new();
        let touched = match event {
            watcher::Event::Init => {
                state.batch_epoch += 1;
                None
            }
            watcher::Event::InitApply(b) | watcher::Event::Apply(b) => {
                let namespace = b.namespace().unwrap_or_default();
                let key = batch_key(&namespace, &b.name_any());
                let entry = match b.spec.target() {
                    Some(target) if !b.is_finished() => Some(BatchEntry {
                        distribution: state.intern(target.id()),
                        namespace: namespace.clone(),
                        usage: Usage::of(&b.spec.items),
                        billed: b.spec.items.len() as u32,
                        epoch: state.batch_epoch,
                    }),
                    _ => None,
                };
                if matches!(event, watcher::Event::Apply(_)) {
                    wake.extend(
                        b.spec
                            .members
                            .iter()
                            .map(|m| ObjectRef::new(&m.name).within(&namespace)),
                    );
                }
                state.put_batch(key, entry)
            }
            watcher::Event::Delete(b) => {
                let key = batch_key(&b.namespace().unwrap_or_default(), &b.name_any());
                state.put_batch(key, None)
            }
            watcher::Event::InitDone => {
                let epoch = state.batch_epoch;
                let gone: Vec<String> = state
                    .batches
                    .iter()
                    .filter(|(_, e)| e.epoch < epoch)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in gone {
                    state.put_batch(key, None);
                }
                state.batches_synced = true;
                for d in state.dists.values_mut() {
                    d.dirty = true;
                }
                None
            }
        };
        if state.ready() {
            match (event, touched) {
                (watcher::Event::InitDone, _) => wake.extend(self.pump_all(&mut state)),
                (watcher::Event::InitApply(_), _) => {}
                (_, Some(dist)) => wake.extend(self.pump(&mut state, &dist)),
                _ => {}
            }
        }
        drop(state);
        self.send(wake);
    }

    /// The candidate was admitted ([`Scheduler::admit`]): merge it with the objects of its
    /// namespace waiting for the same target, oldest first, as long as the merged items fit
    /// the quota (with what they held already) and one request. Their slots go to the batch.
    /// `None`: the candidate's slot is gone meanwhile (another planner took it).
    pub fn plan(
        &self,
        distribution: &str,
        candidate: &Candidate,
        mine: PlannedMember,
        name: &str,
        escalate_above: Option<u32>,
    ) -> Option<Plan> {
        let mut state = self.state.lock().expect("scheduler lock");
        let dist = state.intern(distribution);
        let d = state.dists.get_mut(&dist)?;
        let own = d.grants.get(&candidate.uid).filter(|g| g.batch.is_none())?;
        let namespace = candidate.namespace.clone();
        let mut base = d.filled().minus(own.usage);
        let mut others: Vec<(Timestamp, &String, &WaitingRef)> = d
            .waiting_refs
            .iter()
            .filter(|(uid, w)| {
                *uid != &candidate.uid
                    && w.namespace == namespace
                    && w.merge.is_some()
                    && d.grants.get(*uid).is_none_or(|g| g.batch.is_none())
            })
            .map(|(uid, w)| (w.created, uid, w))
            .collect();
        others.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let member = |uid: &str, w: &WaitingRef, m: &Mergeable| PlannedMember {
            uid: uid.to_owned(),
            name: w.name.clone(),
            created: w.created,
            resource_version: m.resource_version.clone(),
            paths: m.paths.clone(),
        };
        // Escalation (opt-in per distribution): more than N wildcard paths waiting in this
        // namespace, merged, go out as `/*` (tags as they are: `/*` does not cover them).
        if let Some(limit) = escalate_above {
            let mut all: Vec<String> = mine.paths.to_vec();
            let mut held = Usage::default();
            for (_, uid, w) in &others {
                all.extend(w.merge.iter().flat_map(|m| m.paths.iter().cloned()));
                held = held.plus(d.grants.get(*uid).map_or(Usage::default(), |g| g.usage));
            }
            let waiting = paths::normalize(&all).map(|n| n.paths).unwrap_or_default();
            if Usage::of(&waiting).wildcards > limit {
                let mut items = vec!["/*".to_owned()];
                items.extend(waiting.into_iter().filter(|p| paths::is_tag(p)));
                let rest = base.minus(held);
                if items.len() <= paths::MAX_PATHS
                    && rest.plus(Usage::of(&items)).fits_within(self.quota)
                {
                    let mut members = vec![mine];
                    members.extend(
                        others
                            .iter()
                            .filter_map(|(_, uid, w)| Some(member(uid, w, w.merge.as_ref()?))),
                    );
                    return Some(self.hand_to_batch(d, &namespace, name, members, items, true));
                }
            }
        }
        let mut items: Vec<String> = mine.paths.to_vec();
        let mut members = vec![mine];
        for (_, uid, w) in others {
            let Some(m) = &w.merge else { continue };
            let held = d.grants.get(uid).map_or(Usage::default(), |g| g.usage);
            let mut all = items.clone();
            all.extend(m.paths.iter().cloned());
            let Ok(merged) = paths::normalize(&all) else {
                continue;
            };
            let rest = base.minus(held);
            if merged.paths.len() <= paths::MAX_PATHS
                && rest.plus(Usage::of(&merged.paths)).fits_within(self.quota)
            {
                base = rest;
                items = merged.paths;
                members.push(member(uid, w, m));
            }
        }
        Some(self.hand_to_batch(d, &namespace, name, members, items, false))
    }

    /// The members' slots go to the batch: each member holds nothing (and is not admitted on
    /// its own), the batch's reservation holds the merged items.
    fn hand_to_batch(
        &self,
        d: &mut Dist,
        namespace: &str,
        name: &str,
        mut members: Vec<PlannedMember>,
        items: Vec<String>,
        escalated: bool,
    ) -> Plan {
        members.sort_by(|a, b| (a.created, &a.uid).cmp(&(b.created, &b.uid)));
        for m in &members {
            d.drop_grant(&m.uid);
            d.add_grant_for(
                &m.uid,
                namespace,
                Usage::default(),
                true,
                Some(name.to_owned()),
            );
        }
        let key = batch_key(namespace, name);
        d.add_grant_for(&key, namespace, Usage::of(&items), true, None);
        Plan {
            name: name.to_owned(),
            members,
            items,
            escalated,
        }
    }

    /// A plan that was not recorded (or only partly): the members whose claim failed wait
    /// again, and the batch's reservation goes if no record was made.
    pub fn release_plan(
        &self,
        distribution: &str,
        namespace: &str,
        plan: &Plan,
        members: &[&str],
        recorded: bool,
    ) {
        let mut state = self.state.lock().expect("scheduler lock");
        let dist = state.intern(distribution);
        if !state.dists.contains_key(&dist) {
            return;
        }
        let d = state.dist(&dist);
        for uid in members {
            d.drop_grant(uid);
        }
        if !recorded {
            d.drop_grant(&batch_key(namespace, &plan.name));
        }
        let wake = self.pump(&mut state, &dist);
        drop(state);
        self.send(wake);
    }

    /// Feed one watch event into the index.
    pub fn observe(&self, event: &watcher::Event<CloudFrontInvalidation>) {
        let mut state = self.state.lock().expect("scheduler lock");
        let touched = match event {
            watcher::Event::Init => {
                state.watching = true;
                state.epoch += 1;
                None
            }
            watcher::Event::InitApply(obj) | watcher::Event::Apply(obj) => {
                let epoch = state.epoch;
                state.upsert(obj, epoch)
            }
            watcher::Event::Delete(obj) => obj.uid().and_then(|uid| state.remove(&uid)),
            watcher::Event::InitDone => {
                // Objects the new list did not contain were deleted while the watch was down.
                let epoch = state.epoch;
                let gone: Vec<String> = state
                    .entries
                    .iter()
                    .filter(|(_, e)| e.epoch < epoch)
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in gone {
                    state.remove(&uid);
                }
                state.synced = true;
                for d in state.dists.values_mut() {
                    d.dirty = true;
                }
                None
            }
        };
        let wake = match (event, touched) {
            (watcher::Event::InitApply(_), _) => Vec::new(),
            (watcher::Event::InitDone, _) if state.ready() => self.pump_all(&mut state),
            (watcher::Event::InitDone, _) => Vec::new(),
            (_, Some(dist)) if state.ready() => self.pump(&mut state, &dist),
            _ => Vec::new(),
        };
        drop(state);
        self.send(wake);
    }

    fn pump(
        &self,
        state: &mut State,
        distribution: &str,
    ) -> Vec<ObjectRef<CloudFrontInvalidation>> {
        let Some(d) = state.dists.get_mut(distribution) else {
            return Vec::new();
        };
        if d.dirty {
            d.pump(self.quota);
        }
        d.wake_list()
    }

    fn pump_all(&self, state: &mut State) -> Vec<ObjectRef<CloudFrontInvalidation>> {
        let dists: Vec<Arc<str>> = state.dists.keys().cloned().collect();
        dists.iter().flat_map(|d| self.pump(state, d)).collect()
    }

    fn send(&self, wake: Vec<ObjectRef<CloudFrontInvalidation>>) {
        if wake.is_empty() {
            return;
        }
        if let Some(tx) = self.wakes.lock().expect("wakes lock").as_ref() {
            for obj in wake {
                let _ = tx.unbounded_send(obj);
            }
        }
    }

    /// Decide for `candidate` on `distribution`.
    pub fn admit(&self, distribution: &str, candidate: &Candidate) -> Admission {
        if !candidate.usage.fits_within(self.quota) {
            return Admission::Never {
                usage: candidate.usage,
            };
        }
        let mut state = self.state.lock().expect("scheduler lock");
        if !state.ready() {
            // What is in flight is known only once the first list is in.
            return Admission::Wait {
                in_flight: Usage::default(),
            };
        }
        let known = state.entries.get(&candidate.uid).map(|e| {
            (
                match e.role {
                    Role::Waiting { .. } => Known::Waiting,
                    Role::InFlight { .. } => Known::InFlight,
                    Role::Idle if e.phase.is_terminal() => Known::Finished,
                    Role::Idle => Known::Other,
                },
                &*e.distribution == distribution,
            )
        });
        match known {
            // Already submitted (the watch is ahead of this reconcile's copy): resubmitting
            // with the same CallerReference returns the same invalidation.
            Some((Known::InFlight, _)) => return Admission::Admit,
            // Finished, and this reconcile's copy is older: the watch brings the new one.
            Some((Known::Finished, _)) => {
                return Admission::Wait {
                    in_flight: Usage::default(),
                };
            }
            Some((Known::Waiting, true)) => {}
            _ => {
                // Not indexed as waiting here (no watch, or this reconcile is ahead of it).
                let entry = Entry {
                    distribution: state.intern(distribution),
                    phase: Phase::Pending,
                    epoch: state.epoch,
                    role: Role::Waiting {
                        name: candidate.name.clone(),
                        namespace: candidate.namespace.clone(),
                        created: candidate.created,
                        generation: None,
                        usage: candidate.usage,
                        merge: None,
                    },
                };
                state.put(candidate.uid.clone(), entry);
            }
        }
        let dist = state.intern(distribution);
        let wake = self.pump(&mut state, &dist);
        let d = state.dist(&dist);
        let outcome = match d.grants.get_mut(&candidate.uid) {
            // Its slot went to a batch: it follows the batch once its claim comes in.
            Some(grant) if grant.batch.is_some() => Admission::Wait {
                in_flight: d.in_flight,
            },
            Some(grant) => {
                grant.told = true;
                grant.at = Instant::now();
                Admission::Admit
            }
            None => Admission::Wait {
                in_flight: d.in_flight,
            },
        };
        drop(state);
        self.send(wake);
        outcome
    }

    /// The candidate's submission did not go through (a retryable error): it no longer holds a
    /// slot, and it retries on its own backoff.
    pub fn release(&self, uid: &str) {
        self.release_with(uid, false);
    }

    /// CloudFront refused the submission as over its in-progress quota: another writer uses the
    /// distribution. The object goes back to waiting, and for a moment no one else on the
    /// distribution is woken (each retries on its own backoff).
    pub fn refused(&self, uid: &str) {
        self.release_with(uid, true);
    }

    fn release_with(&self, uid: &str, pause: bool) {
        let mut state = self.state.lock().expect("scheduler lock");
        let Some(dist) = state
            .dists
            .iter()
            .find(|(_, d)| d.grants.contains_key(uid))
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        let d = state.dist(&dist);
        d.drop_grant(uid);
        d.no_wake.insert(uid.to_owned(), Instant::now());
        if pause {
            d.paused_until = Some(Instant::now() + REFUSED_PAUSE);
        }
        let wake = self.pump(&mut state, &dist);
        drop(state);
        self.send(wake);
    }

    /// Invalidations of `distribution` the operator polls (submitted, not finished).
    pub fn polling(&self, distribution: &str) -> usize {
        let state = self.state.lock().expect("scheduler lock");
        state.dists.get(distribution).map_or(0, |d| d.polling)
    }

    /// What is in flight on `distribution` (submitted, admitted, or still running in CloudFront
    /// after our timeout).
    pub fn in_flight(&self, distribution: &str) -> Usage {
        let state = self.state.lock().expect("scheduler lock");
        state
            .dists
            .get(distribution)
            .map_or(Usage::default(), Dist::filled)
    }

    /// Counts for the metrics.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.state.lock().expect("scheduler lock");
        Snapshot {
            phases: PHASES
                .into_iter()
                .map(|p| (p, state.phases[phase_index(p)]))
                .collect(),
            in_flight: state
                .dists
                .iter()
                .filter(|(_, d)| d.in_flight_count > 0)
                .map(|(k, d)| {
                    (
                        k.to_string(),
                        InFlight {
                            invalidations: d.in_flight_count,
                            billed_paths: d.billed,
                            wildcard_paths: i64::from(d.in_flight.wildcards),
                        },
                    )
                })
                .collect(),
            queued: state
                .dists
                .iter()
                .filter(|(_, d)| d.queued > 0)
                .map(|(k, d)| (k.to_string(), d.queued))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
