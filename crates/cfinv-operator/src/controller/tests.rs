//! The reconcile state machine against a mocked Kubernetes API (tower-test) and a scripted fake
//! CloudFront. Every test counts the CloudFront calls and Kubernetes writes it causes.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use http::{Request, Response, StatusCode};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Client, client::Body, runtime::controller::Action};
use serde_json::{Value, json};

use super::{Context, Error, Settings, error_policy, reconcile};
use cfinv_api::crd::{
    CloudFrontInvalidation, CloudFrontInvalidationSpec, CloudFrontInvalidationStatus, Phase,
};
use cfinv_cloudfront::backoff::RetrySettings;
use cfinv_cloudfront::{
    CloudFront, CloudFrontError, CreateInvalidation, DistributionConfig, Invalidation,
    InvalidationPage, InvalidationStatus, InvalidationSummary,
};
use kube::runtime::{reflector, watcher};
use rand::SeedableRng;

// ---------- fake CloudFront ----------

type Reply = Result<InvalidationStatus, CloudFrontError>;

/// One invalidation the fake holds.
#[derive(Clone, Debug)]
struct Held {
    distribution: String,
    id: String,
    caller_reference: String,
    created: Timestamp,
    status: InvalidationStatus,
}

/// CloudFront as the reconciler sees it: every invalidation it accepted, with CallerReference
/// idempotency (the same reference returns the same invalidation) and ListInvalidations with
/// its real semantics (newest first, MaxItems, Marker). Answers can be scripted per call; an
/// unscripted Get or List answers from what the fake holds.
#[derive(Default)]
struct FakeCloudFront {
    create_replies: Mutex<VecDeque<Reply>>,
    get_replies: Mutex<VecDeque<Reply>>,
    list_errors: Mutex<VecDeque<CloudFrontError>>,
    creates: Mutex<Vec<CreateInvalidation>>,
    /// (distribution, id) of every GetInvalidation.
    gets: Mutex<Vec<(String, String)>>,
    lists: Mutex<usize>,
    held: Mutex<Vec<Held>>,
    tenant_creates: Mutex<Vec<CreateInvalidation>>,
    /// (tenant, id) of every GetInvalidationForDistributionTenant.
    tenant_gets: Mutex<Vec<(String, String)>>,
    config_replies: Mutex<VecDeque<Result<DistributionConfig, CloudFrontError>>>,
    /// The distribution of every GetDistributionConfig.
    config_gets: Mutex<Vec<String>>,
}

impl FakeCloudFront {
    fn on_create(self, reply: Reply) -> Self {
        self.create_replies.lock().unwrap().push_back(reply);
        self
    }
    fn on_get(self, reply: Reply) -> Self {
        self.get_replies.lock().unwrap().push_back(reply);
        self
    }
    /// The next GetDistributionConfig answer; unscripted, a distribution has a CacheTagConfig.
    fn on_config(self, reply: Result<DistributionConfig, CloudFrontError>) -> Self {
        self.config_replies.lock().unwrap().push_back(reply);
        self
    }
    fn on_list(self, error: CloudFrontError) -> Self {
        self.list_errors.lock().unwrap().push_back(error);
        self
    }
    /// An invalidation CloudFront already holds (submitted before the test).
    fn holding(self, distribution: &str, id: &str, status: InvalidationStatus) -> Self {
        self.held.lock().unwrap().push(Held {
            distribution: distribution.to_owned(),
            id: id.to_owned(),
            caller_reference: format!("ref-{id}"),
            created: Timestamp::UNIX_EPOCH,
            status,
        });
        self
    }
    fn creates(&self) -> Vec<CreateInvalidation> {
        self.creates.lock().unwrap().clone()
    }
    fn gets(&self) -> usize {
        self.gets.lock().unwrap().len()
    }
    fn got(&self) -> Vec<(String, String)> {
        self.gets.lock().unwrap().clone()
    }
    fn lists(&self) -> usize {
        *self.lists.lock().unwrap()
    }
    fn tenant_creates(&self) -> Vec<CreateInvalidation> {
        self.tenant_creates.lock().unwrap().clone()
    }
    fn tenant_gets(&self) -> usize {
        self.tenant_gets.lock().unwrap().len()
    }
    fn config_gets(&self) -> Vec<String> {
        self.config_gets.lock().unwrap().clone()
    }
    /// Every CloudFront call made, whatever the operation.
    fn calls(&self) -> usize {
        self.creates.lock().unwrap().len()
            + self.gets()
            + self.lists()
            + self.tenant_creates.lock().unwrap().len()
            + self.tenant_gets()
            + self.config_gets().len()
    }
    fn invalidations_created(&self) -> usize {
        self.held
            .lock()
            .unwrap()
            .iter()
            .filter(|h| !h.caller_reference.starts_with("ref-"))
            .count()
    }
}

#[async_trait]
impl CloudFront for FakeCloudFront {
    async fn create_invalidation(
        &self,
        request: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError> {
        self.creates.lock().unwrap().push(request.clone());
        let status = self
            .create_replies
            .lock()
            .unwrap()
            .pop_front()
            .expect("unexpected CreateInvalidation call")?;
        let mut held = self.held.lock().unwrap();
        let existing = held.iter().find(|h| {
            h.distribution == request.distribution_id
                && h.caller_reference == request.caller_reference
        });
        let h = match existing {
            Some(h) => h.clone(),
            None => {
                let h = Held {
                    distribution: request.distribution_id.clone(),
                    id: format!("I{:013}", held.len()),
                    caller_reference: request.caller_reference.clone(),
                    created: Timestamp::now(),
                    status,
                };
                held.push(h.clone());
                h
            }
        };
        Ok(Invalidation {
            id: h.id,
            status: h.status,
            create_time: Some(h.created),
            caller_reference: Some(h.caller_reference),
            paths: request.paths.clone(),
        })
    }

    async fn get_invalidation(
        &self,
        distribution_id: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        self.gets
            .lock()
            .unwrap()
            .push((distribution_id.to_owned(), id.to_owned()));
        let scripted = self.get_replies.lock().unwrap().pop_front();
        let status = match scripted {
            Some(reply) => reply?,
            None => self
                .held
                .lock()
                .unwrap()
                .iter()
                .find(|h| h.distribution == distribution_id && h.id == id)
                .map(|h| h.status.clone())
                .ok_or_else(|| {
                    CloudFrontError::service("NoSuchInvalidation", "no such invalidation", 404)
                })?,
        };
        Ok(Invalidation {
            id: id.to_owned(),
            status,
            create_time: None,
            caller_reference: None,
            paths: Vec::new(),
        })
    }

    async fn list_invalidations(
        &self,
        distribution_id: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        *self.lists.lock().unwrap() += 1;
        if let Some(error) = self.list_errors.lock().unwrap().pop_front() {
            return Err(error);
        }
        // Newest first; the marker is the id of the last item of the previous page.
        let held = self.held.lock().unwrap();
        let mut mine: Vec<&Held> = held
            .iter()
            .filter(|h| h.distribution == distribution_id)
            .collect();
        mine.reverse();
        let start = marker.map_or(0, |m| {
            mine.iter()
                .position(|h| h.id == m)
                .map_or(mine.len(), |i| i + 1)
        });
        let max = max_items.map_or(100, |m| m.clamp(1, 100) as usize);
        let page: Vec<&Held> = mine.iter().skip(start).take(max).copied().collect();
        let next_marker = (start + page.len() < mine.len())
            .then(|| page.last().map(|h| h.id.clone()))
            .flatten();
        Ok(InvalidationPage {
            items: page
                .into_iter()
                .map(|h| InvalidationSummary {
                    id: h.id.clone(),
                    status: h.status.clone(),
                    create_time: Some(h.created),
                })
                .collect(),
            next_marker,
        })
    }

    /// The same script as CreateInvalidation (one queue of answers), recorded apart.
    async fn create_invalidation_for_distribution_tenant(
        &self,
        request: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError> {
        let result = self.create_invalidation(request).await;
        let request = self.creates.lock().unwrap().pop().expect("just recorded");
        self.tenant_creates.lock().unwrap().push(request);
        result
    }

    async fn get_invalidation_for_distribution_tenant(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        let result = self.get_invalidation(tenant_id, id).await;
        let id = self.gets.lock().unwrap().pop().expect("just recorded");
        self.tenant_gets.lock().unwrap().push(id);
        result
    }

    /// A tenant's invalidations are held under the tenant id, listed the same way.
    async fn list_invalidations_for_distribution_tenant(
        &self,
        tenant_id: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        self.list_invalidations(tenant_id, marker, max_items).await
    }

    async fn get_distribution_config(
        &self,
        distribution_id: &str,
    ) -> Result<DistributionConfig, CloudFrontError> {
        self.config_gets
            .lock()
            .unwrap()
            .push(distribution_id.to_owned());
        // As a network call does: other tasks run meanwhile (concurrent lookups overlap).
        tokio::task::yield_now().await;
        self.config_replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| {
                Ok(DistributionConfig {
                    cache_tag_header: Some("x-amz-meta-cache-tag".to_owned()),
                })
            })
    }
}

#[tokio::test]
async fn the_fake_lists_newest_first_in_pages() {
    let fake = FakeCloudFront::default()
        .holding("E1", "I1", InvalidationStatus::Completed)
        .holding("E1", "I2", InvalidationStatus::InProgress)
        .holding("E2", "I3", InvalidationStatus::InProgress)
        .holding("E1", "I4", InvalidationStatus::InProgress);
    let first = fake.list_invalidations("E1", None, Some(2)).await.unwrap();
    let ids: Vec<&str> = first.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["I4", "I2"]);
    assert_eq!(first.next_marker.as_deref(), Some("I2"));
    let rest = fake
        .list_invalidations("E1", first.next_marker.as_deref(), Some(2))
        .await
        .unwrap();
    let ids: Vec<&str> = rest.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["I1"]);
    assert_eq!(rest.next_marker, None);
}

// ---------- mocked API server ----------

#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    path: String,
    body: Value,
}

/// Answers every request the way the API server would for our two writes (status patches and
/// events), records them, and can be told to fail status writes.
struct ApiServer {
    requests: Arc<Mutex<Vec<Recorded>>>,
    fail_status_writes: Arc<Mutex<bool>>,
}

impl ApiServer {
    fn start(obj: &CloudFrontInvalidation) -> (Client, Self) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let fail = Arc::new(Mutex::new(false));
        let (rec, fail_writes, base) = (
            requests.clone(),
            fail.clone(),
            serde_json::to_value(obj).unwrap(),
        );
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().to_string();
                let path = request.uri().path().to_owned();
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                rec.lock().unwrap().push(Recorded {
                    method,
                    path: path.clone(),
                    body: body.clone(),
                });
                let response = if path.ends_with("/status") {
                    if *fail_writes.lock().unwrap() {
                        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "message": "etcdserver: request timed out", "reason": "InternalError", "code": 500});
                        Response::builder()
                            .status(StatusCode::INTERNAL_SERVER_ERROR)
                            .body(Body::from(serde_json::to_vec(&status).unwrap()))
                    } else {
                        let mut obj = base.clone();
                        obj["status"] = body["status"].clone();
                        Response::builder().body(Body::from(serde_json::to_vec(&obj).unwrap()))
                    }
                } else {
                    Response::builder()
                        .status(StatusCode::CREATED)
                        .body(Body::from(serde_json::to_vec(&body).unwrap()))
                };
                send.send_response(response.unwrap());
            }
        });
        let client = Client::new(service, "default");
        (
            client,
            Self {
                requests,
                fail_status_writes: fail,
            },
        )
    }

    fn status_writes(&self) -> Vec<CloudFrontInvalidationStatus> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.ends_with("/status") && r.method == "PATCH")
            .map(|r| serde_json::from_value(r.body["status"].clone()).unwrap())
            .collect()
    }

    fn events(&self) -> Vec<(String, String)> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.contains("/events"))
            .map(|r| {
                let s = |k: &str| r.body[k].as_str().unwrap_or_default().to_owned();
                (s("type"), s("reason"))
            })
            .collect()
    }

    fn fail_status_writes(&self, fail: bool) {
        *self.fail_status_writes.lock().unwrap() = fail;
    }

    fn forget(&self) {
        self.requests.lock().unwrap().clear();
    }
}

// ---------- fixtures ----------

/// The fixed "now" of every unit test.
fn now() -> Timestamp {
    "2026-12-02T10:00:00Z".parse().unwrap()
}

const SEED: u64 = 11;

fn object(paths: &[&str]) -> CloudFrontInvalidation {
    named("site", "5f1c0b6e-0000-4000-8000-000000000001", paths)
}

fn named(name: &str, uid: &str, paths: &[&str]) -> CloudFrontInvalidation {
    let mut obj = CloudFrontInvalidation::new(
        name,
        CloudFrontInvalidationSpec {
            distribution_id: Some("E2EXAMPLE".into()),
            distribution_tenant_id: None,
            paths: paths.iter().map(|p| (*p).into()).collect(),
            caller_reference: None,
            timeout_seconds: 900,
            ttl_seconds_after_finished: None,
        },
    );
    obj.metadata.namespace = Some("web".into());
    obj.metadata.uid = Some(uid.into());
    obj.metadata.generation = Some(1);
    obj.metadata.creation_timestamp = Some(Time(now() - SignedDuration::from_secs(1000)));
    obj
}

fn with_status(
    mut obj: CloudFrontInvalidation,
    status: CloudFrontInvalidationStatus,
) -> CloudFrontInvalidation {
    obj.status = Some(status);
    obj
}

fn in_progress(started_ago: SignedDuration) -> CloudFrontInvalidationStatus {
    in_progress_as("I0000000000001", started_ago)
}

fn in_progress_as(id: &str, started_ago: SignedDuration) -> CloudFrontInvalidationStatus {
    let started = now() - started_ago;
    CloudFrontInvalidationStatus {
        phase: Some(Phase::InProgress),
        invalidation_id: Some(id.into()),
        distribution_id: Some("E2EXAMPLE".into()),
        billed_paths: Some(1),
        start_time: Some(Time(started)),
        create_time: Some(Time(started)),
        observed_generation: Some(1),
        ..Default::default()
    }
}

struct Harness {
    cloudfront: Arc<FakeCloudFront>,
    api: ApiServer,
    ctx: Arc<Context>,
    cache: reflector::store::Writer<CloudFrontInvalidation>,
    /// The reader of `cache`, as the controller's reflector would hold it.
    store: reflector::Store<CloudFrontInvalidation>,
}

impl Harness {
    /// Puts objects in the controller's cache and the scheduler's index, as its watch would.
    fn cache(&mut self, objects: &[&CloudFrontInvalidation]) {
        for obj in objects {
            let event = watcher::Event::Apply((*obj).clone());
            self.ctx.scheduling.scheduler.observe(&event);
            self.cache.apply_watcher_event(&event);
        }
    }

    /// Reconciles the object as the controller would: from the cache (updated with what was
    /// written). Returns the action and the object as it now is.
    async fn step(
        &mut self,
        obj: &CloudFrontInvalidation,
    ) -> (Result<Action, Error>, CloudFrontInvalidation) {
        let before = self.api.status_writes().len();
        self.cache(&[obj]);
        let result = reconcile(Arc::new(obj.clone()), self.ctx.clone()).await;
        let writes = self.api.status_writes();
        let current = match writes.get(before..).and_then(|w| w.last()) {
            Some(s) if result.is_ok() => with_status(obj.clone(), s.clone()),
            _ => obj.clone(),
        };
        self.cache(&[&current]);
        (result, current)
    }
}

fn harness(obj: &CloudFrontInvalidation, cloudfront: FakeCloudFront) -> Harness {
    harness_with(obj, cloudfront, Settings::default())
}

fn harness_with(
    obj: &CloudFrontInvalidation,
    cloudfront: FakeCloudFront,
    settings: Settings,
) -> Harness {
    let (client, api) = ApiServer::start(obj);
    let cloudfront = Arc::new(cloudfront);
    let mut ctx = Context::new(client, cloudfront.clone(), settings).at(now());
    ctx.retries = ctx.retries.seeded(SEED);
    let (store, writer) = reflector::store();
    // The watch's first list, empty: the scheduler admits nothing before it.
    ctx.scheduling.scheduler.observe(&watcher::Event::Init);
    ctx.scheduling.scheduler.observe(&watcher::Event::InitDone);
    Harness {
        cloudfront,
        api,
        ctx: Arc::new(ctx),
        cache: writer,
        store,
    }
}

fn throttled() -> CloudFrontError {
    CloudFrontError::service("Throttling", "Rate exceeded", 400)
}

/// The backoff delays the seeded harness hands out, attempt by attempt.
fn backoff_delays(settings: &RetrySettings, n: u32) -> Vec<Duration> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
    (0..n)
        .map(|attempt| settings.delay(attempt, &mut rng))
        .collect()
}

/// What the polling schedule says for one invalidation on its own of a new distribution.
fn expected_poll(since_submit: Duration) -> Duration {
    let window = cfinv_cloudfront::polling::CompletionModel::default().window("E2EXAMPLE");
    Settings::default().poll.next_poll(since_submit, window, 1)
}

fn failed_reason(s: &CloudFrontInvalidationStatus) -> String {
    s.conditions
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

// ---------- tests ----------

#[tokio::test]
async fn new_object_is_submitted_once_with_its_uid_as_caller_reference() {
    let obj = object(&["index.html", "/index.html", "/img/*", "/img/a.png"]);
    let mut h = harness(
        &obj,
        FakeCloudFront::default().on_create(Ok(InvalidationStatus::InProgress)),
    );

    let (action, _) = h.step(&obj).await;

    let creates = h.cloudfront.creates();
    assert_eq!(creates.len(), 1);
    assert_eq!(
        creates[0].caller_reference,
        obj.metadata.uid.clone().unwrap()
    );
    assert_eq!(
        creates[0].paths,
        vec!["/index.html", "/img/*"],
        "deduplicated and covered paths dropped"
    );
    let writes = h.api.status_writes();
    assert_eq!(writes.len(), 1, "one status write");
    let s = &writes[0];
    assert_eq!(s.phase, Some(Phase::InProgress));
    assert_eq!(s.invalidation_id.as_deref(), Some("I0000000000000"));
    assert_eq!(s.billed_paths, Some(2));
    assert_eq!(
        s.submitted_paths.as_deref(),
        Some(&["/index.html".to_owned(), "/img/*".to_owned()][..])
    );
    assert_eq!(s.caller_reference, obj.metadata.uid);
    assert_eq!(s.distribution_id.as_deref(), Some("E2EXAMPLE"));
    assert_eq!(s.cloud_front_status.as_deref(), Some("InProgress"));
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(s.start_time, Some(Time(now())));
    assert_eq!(h.api.events(), vec![("Normal".into(), "Submitted".into())]);
    assert_eq!(
        action.unwrap(),
        Action::requeue(expected_poll(Duration::ZERO))
    );
}

#[tokio::test]
async fn spec_caller_reference_wins_over_the_uid() {
    let mut obj = object(&["/a"]);
    obj.spec.caller_reference = Some("release-42".into());
    let mut h = harness(
        &obj,
        FakeCloudFront::default().on_create(Ok(InvalidationStatus::InProgress)),
    );
    h.step(&obj).await.0.unwrap();
    assert_eq!(h.cloudfront.creates()[0].caller_reference, "release-42");
}

#[tokio::test]
async fn invalid_paths_fail_without_any_cloudfront_call() {
    // Possible on clusters without CEL, where the API server cannot reject it.
    let obj = object(&["/assets/app.*.js", "/ok"]);
    let mut h = harness(&obj, FakeCloudFront::default());

    let (action, _) = h.step(&obj).await;

    assert!(h.cloudfront.creates().is_empty());
    let s = &h.api.status_writes()[0];
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(failed_reason(s), "InvalidPaths");
    assert!(
        s.message.as_deref().unwrap().contains("spec.paths[0]"),
        "{:?}",
        s.message
    );
    assert_eq!(
        h.api.events(),
        vec![("Warning".into(), "InvalidPaths".into())]
    );
    assert_eq!(action.unwrap(), Action::await_change());
}

#[tokio::test]
async fn polling_a_running_invalidation_writes_nothing() {
    let obj = with_status(object(&["/a"]), in_progress(SignedDuration::from_secs(40)));
    let mut h = harness(
        &obj,
        FakeCloudFront::default()
            .on_get(Ok(InvalidationStatus::InProgress))
            .on_get(Ok(InvalidationStatus::InProgress)),
    );

    // The fixture lacks the operator's conditions, so the first poll may write them once...
    let (action, current) = h.step(&obj).await;
    h.api.forget();
    // ...and a poll of what the operator wrote writes nothing.
    let (action2, _) = h.step(&current).await;

    assert_eq!(h.cloudfront.gets(), 2);
    assert!(h.cloudfront.creates().is_empty(), "never submitted twice");
    assert!(
        h.api.status_writes().is_empty(),
        "nothing changed, nothing written"
    );
    assert!(h.api.events().is_empty());
    // Requeued on the polling schedule, 40 s after submission.
    let expected = Action::requeue(expected_poll(Duration::from_secs(40)));
    assert_eq!(action.unwrap(), expected);
    assert_eq!(action2.unwrap(), expected);
}

#[tokio::test]
async fn completion_is_written_once_with_an_event_and_no_requeue() {
    let obj = with_status(object(&["/a"]), in_progress(SignedDuration::from_secs(50)));
    let mut h = harness(
        &obj,
        FakeCloudFront::default().on_get(Ok(InvalidationStatus::Completed)),
    );

    let (action, _) = h.step(&obj).await;

    let s = &h.api.status_writes()[0];
    assert_eq!(s.phase, Some(Phase::Completed));
    assert_eq!(s.completion_time, Some(Time(now())));
    assert_eq!(s.cloud_front_status.as_deref(), Some("Completed"));
    for (ty, want) in [
        ("Completed", "True"),
        ("Ready", "True"),
        ("Failed", "False"),
        ("Reconciling", "False"),
    ] {
        let c = s.conditions.iter().find(|c| c.type_ == ty).unwrap();
        assert_eq!(c.status, want, "{ty}");
    }
    assert_eq!(h.api.events(), vec![("Normal".into(), "Completed".into())]);
    assert_eq!(action.unwrap(), Action::await_change());
}

#[tokio::test]
async fn finished_objects_cost_nothing() {
    for phase in [Phase::Completed, Phase::Failed] {
        let mut status = in_progress(SignedDuration::from_secs(100));
        status.phase = Some(phase);
        let obj = with_status(object(&["/a"]), status);
        // No answer is scripted; the mocked API server records any write.
        let mut h = harness(&obj, FakeCloudFront::default());
        let (action, _) = h.step(&obj).await;
        assert_eq!(action.unwrap(), Action::await_change(), "{phase}");
        assert!(h.api.status_writes().is_empty(), "{phase}");
        assert_eq!(h.cloudfront.gets() + h.cloudfront.creates().len(), 0);
    }
}

#[tokio::test]
async fn crash_between_submit_and_status_write_adopts_the_same_invalidation() {
    let obj = object(&["/index.html"]);
    let mut h = harness(
        &obj,
        FakeCloudFront::default()
            .on_create(Ok(InvalidationStatus::InProgress))
            .on_create(Ok(InvalidationStatus::InProgress)),
    );
    // CloudFront accepts, then the status write fails: as if the operator died right there.
    h.api.fail_status_writes(true);
    assert!(h.step(&obj).await.0.is_err());
    // The next reconcile sees no status and submits again, with the same CallerReference.
    h.api.fail_status_writes(false);
    h.api.forget();
    h.step(&obj).await.0.unwrap();

    let creates = h.cloudfront.creates();
    assert_eq!(creates.len(), 2);
    assert_eq!(
        creates[0], creates[1],
        "identical batch and CallerReference"
    );
    assert_eq!(
        h.cloudfront.invalidations_created(),
        1,
        "never two invalidations"
    );
    let s = &h.api.status_writes()[0];
    assert_eq!(s.invalidation_id.as_deref(), Some("I0000000000000"));
}

/// Item 1: CloudFront completed it shortly before the deadline; the reconcile at the deadline
/// asks once and the object is Completed, not Failed/Timeout.
#[tokio::test]
async fn at_the_deadline_completed_in_cloudfront_wins() {
    let obj = with_status(object(&["/a"]), in_progress(SignedDuration::from_secs(900)));
    let mut h = harness(
        &obj,
        FakeCloudFront::default().on_get(Ok(InvalidationStatus::Completed)),
    );
    let (action, done) = h.step(&obj).await;
    assert_eq!(h.cloudfront.gets(), 1, "asked once at the deadline");
    assert_eq!(done.phase(), Phase::Completed, "{:?}", done.status);
    assert_eq!(action.unwrap(), Action::await_change());
}

/// Item 1: still running at the deadline: Failed/Timeout naming the id and saying it keeps
/// running; then the slow follow-up records CloudFront's completion on the failed object.
#[tokio::test]
async fn at_the_deadline_still_running_fails_timeout_and_is_followed_up() {
    let obj = with_status(object(&["/a"]), in_progress(SignedDuration::from_secs(901)));
    let mut h = harness(
        &obj,
        FakeCloudFront::default()
            .on_get(Ok(InvalidationStatus::InProgress))
            .on_get(Ok(InvalidationStatus::InProgress))
            .on_get(Ok(InvalidationStatus::Completed)),
    );

    let (action, failed) = h.step(&obj).await;
    let s = failed.status.clone().unwrap();
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(failed_reason(&s), "Timeout");
    let message = s.message.clone().unwrap();
    assert!(
        message.contains("I0000000000001") && message.contains("keeps running"),
        "{message}"
    );
    assert!(!message.contains("nothing was invalidated"), "{message}");
    assert_eq!(s.cloud_front_status.as_deref(), Some("InProgress"));
    let follow_up = Settings::default().follow_up;
    assert_eq!(action.unwrap(), Action::requeue(follow_up));

    // Still running: nothing written, look again later.
    h.api.forget();
    let (action, same) = h.step(&failed).await;
    assert!(h.api.status_writes().is_empty());
    assert_eq!(action.unwrap(), Action::requeue(follow_up));

    // CloudFront finished: recorded, the object stays Failed, no more looks.
    let (action, after) = h.step(&same).await;
    let s = after.status.clone().unwrap();
    assert_eq!(s.phase, Some(Phase::Failed), "never back to non-terminal");
    assert_eq!(failed_reason(&s), "Timeout");
    assert_eq!(s.cloud_front_status.as_deref(), Some("Completed"));
    assert!(s.message.as_deref().unwrap().contains("completed it later"));
    assert_eq!(action.unwrap(), Action::await_change());
    assert_eq!(
        h.api.events(),
        vec![("Normal".into(), "CompletedAfterTimeout".into())]
    );
    assert_eq!(h.cloudfront.gets(), 3);
    // And once recorded, the object costs nothing any more.
    h.step(&after).await.0.unwrap();
    assert_eq!(h.cloudfront.gets(), 3);
}

/// Item 7: never sent, the timeout says nothing was invalidated; sent without an answer, it
/// says CloudFront may hold it.
#[tokio::test]
async fn the_timeout_message_says_nothing_was_invalidated_only_when_nothing_was_sent() {
    let mut never = CloudFrontInvalidationStatus {
        phase: Some(Phase::Queued),
        start_time: Some(Time(now() - SignedDuration::from_secs(901))),
        observed_generation: Some(1),
        ..Default::default()
    };
    let obj = with_status(object(&["/a"]), never.clone());
    let mut h = harness(&obj, FakeCloudFront::default());
    let (_, failed) = h.step(&obj).await;
    let message = failed.status.unwrap().message.unwrap();
    assert!(message.contains("nothing was invalidated"), "{message}");

    never.phase = Some(Phase::Pending);
    never.caller_reference = Some("5f1c0b6e-0000-4000-8000-000000000001".into());
    never.distribution_id = Some("E2EXAMPLE".into());
    never.submitted_paths = Some(vec!["/a".into()]);
    let obj = with_status(object(&["/a"]), never);
    let mut h = harness(&obj, FakeCloudFront::default());
    let (_, failed) = h.step(&obj).await;
    let s = failed.status.unwrap();
    assert_eq!(failed_reason(&s), "Timeout");
    let message = s.message.unwrap();
    assert!(!message.contains("nothing was invalidated"), "{message}");
    assert!(message.contains("may hold an invalidation"), "{message}");
    assert_eq!(h.cloudfront.creates().len() + h.cloudfront.gets(), 0);
}

#[tokio::test]
async fn the_next_poll_never_overshoots_the_deadline() {
    let mut obj = object(&["/a"]);
    obj.spec.timeout_seconds = 60;
    let obj = with_status(obj, in_progress(SignedDuration::from_secs(58)));
    let mut h = harness(
        &obj,
        FakeCloudFront::default().on_get(Ok(InvalidationStatus::InProgress)),
    );
    let (action, _) = h.step(&obj).await;
    assert_eq!(action.unwrap(), Action::requeue(Duration::from_secs(2)));
}

/// Item 7: CloudFront's CreateTime ahead of our clock is no elapsed time: the schedule is the
/// one of a fresh submission, not of one a minute old.
#[tokio::test]
async fn clock_skew_never_counts_as_elapsed_time() {
    let mut status = in_progress(SignedDuration::from_secs(10));
    status.create_time = Some(Time(now() + SignedDuration::from_secs(600)));
    let obj = with_status(object(&["/a"]), status);
    let mut h = harness(
        &obj,
        FakeCloudFront::default().on_get(Ok(InvalidationStatus::InProgress)),
    );
    let (action, _) = h.step(&obj).await;
    assert_eq!(
        action.unwrap(),
        Action::requeue(expected_poll(Duration::ZERO))
    );
}

#[tokio::test]
async fn too_many_in_progress_queues_and_retries_instead_of_failing() {
    let obj = object(&["/*"]);
    let busy = CloudFrontError::service("TooManyInvalidationsInProgress", "busy", 400);
    let mut h = harness(
        &obj,
        FakeCloudFront::default()
            .on_create(Err(busy.clone()))
            .on_create(Err(busy)),
    );

    let (action, queued) = h.step(&obj).await;
    let s = queued.status.clone().unwrap();
    assert_eq!(s.phase, Some(Phase::Queued));
    let first = backoff_delays(&Settings::default().retry, 1)[0];
    assert_eq!(action.unwrap(), Action::requeue(first));

    // Still busy: same status, so nothing is written again.
    h.api.forget();
    h.step(&queued).await.0.unwrap();
    assert!(h.api.status_writes().is_empty());
    assert_eq!(h.cloudfront.creates().len(), 2);
}

#[tokio::test]
async fn retryable_errors_back_off_then_succeed() {
    let obj = object(&["/a"]);
    let mut h = harness(
        &obj,
        FakeCloudFront::default()
            .on_create(Err(throttled()))
            .on_create(Err(CloudFrontError::service(
                "ServiceUnavailable",
                "down",
                503,
            )))
            .on_create(Err(CloudFrontError::network("connection reset")))
            .on_create(Err(CloudFrontError::service(
                "RequestTimeTooSkewed",
                "skew",
                403,
            )))
            .on_create(Ok(InvalidationStatus::InProgress)),
    );
    let mut actions = Vec::new();
    let mut current = obj.clone();
    for _ in 0..5 {
        let (action, next) = h.step(&current).await;
        actions.push(action.unwrap());
        current = next;
    }
    assert_eq!(current.phase(), Phase::InProgress);
    let expected: Vec<Action> = backoff_delays(&Settings::default().retry, 4)
        .into_iter()
        .map(Action::requeue)
        .collect();
    assert_eq!(
        actions[..4],
        expected[..],
        "equal-jitter backoff, attempt by attempt"
    );
    assert_eq!(h.cloudfront.creates().len(), 5);
    assert_eq!(h.cloudfront.invalidations_created(), 1);
}

#[tokio::test]
async fn terminal_errors_fail_with_their_reason() {
    let cases = [
        ("NoSuchDistribution", 404, "DistributionNotFound", "no"),
        ("AccessDenied", 403, "AccessDenied", "no"),
        (
            "InvalidationBatchAlreadyExists",
            409,
            "CallerReferenceConflict",
            "no",
        ),
        ("BatchTooLarge", 413, "BatchTooLarge", "no"),
        // Item 7: the live service's spelling of a reused CallerReference.
        (
            "InvalidArgument",
            400,
            "CallerReferenceConflict",
            "Your request contains a caller reference that was used for a previous invalidation batch for the same distribution.",
        ),
    ];
    for (code, http, reason, text) in cases {
        let obj = object(&["/a"]);
        let mut h = harness(
            &obj,
            FakeCloudFront::default().on_create(Err(CloudFrontError::service(code, text, http))),
        );
        let (action, _) = h.step(&obj).await;
        let s = &h.api.status_writes()[0];
        assert_eq!(s.phase, Some(Phase::Failed), "{code}");
        assert_eq!(failed_reason(s), reason, "{code}");
        assert!(
            s.message.as_deref().unwrap().contains(code),
            "{code}: {:?}",
            s.message
        );
        assert_eq!(action.unwrap(), Action::await_change(), "{code}");
        assert_eq!(h.api.events(), vec![("Warning".into(), reason.into())]);
    }
}

/// Item 2: once CloudFront holds the invalidation, errors are retried (AccessDenied
/// included), and only "it does not exist" ends the object.
#[tokio::test]
async fn errors_after_submission_are_retried_and_only_not_found_is_final() {
    for (code, http) in [
        ("AccessDenied", 403),
        ("Throttling", 400),
        ("InternalError", 500),
        ("ServiceUnavailable", 503),
        ("SomethingNew", 400),
    ] {
        let obj = with_status(object(&["/a"]), in_progress(SignedDuration::from_secs(30)));
        let mut h = harness(
            &obj,
            FakeCloudFront::default().on_get(Err(CloudFrontError::service(code, "x", http))),
        );
        let (action, after) = h.step(&obj).await;
        let s = after.status.unwrap();
        assert_eq!(s.phase, Some(Phase::InProgress), "{code}");
        let message = s.message.unwrap();
        assert!(
            message.contains("GetInvalidation failed, retrying"),
            "{code}: {message}"
        );
        if code == "AccessDenied" {
            for action in super::reconcile::IAM_ACTIONS {
                assert!(message.contains(action), "{message}");
            }
        }
        let first = backoff_delays(&Settings::default().retry, 1)[0];
        assert_eq!(action.unwrap(), Action::requeue(first), "{code}");
        assert!(h.cloudfront.creates().is_empty());
    }
    for (code, reason) in [
        ("NoSuchInvalidation", "InvalidationNotFound"),
        ("NoSuchDistribution", "DistributionNotFound"),
    ] {
        let obj = with_status(object(&["/a"]), in_progress(SignedDuration::from_secs(30)));
        let mut h = harness(
            &obj,
            FakeCloudFront::default().on_get(Err(CloudFrontError::service(code, "x", 404))),
        );
        let (_, after) = h.step(&obj).await;
        assert_eq!(after.phase(), Phase::Failed, "{code}");
        assert_eq!(failed_reason(after.status.as_ref().unwrap()), reason);
    }
}

/// Item 2: the IAM hint names exactly the actions deploy/iam-policy.json requires; its one
/// optional statement grants the CacheTagConfig check's action alone.
#[test]
fn the_iam_hint_names_the_actions_of_deploy_iam_policy() {
    let policy: Value =
        serde_json::from_str(include_str!("../../../../deploy/iam-policy.json")).unwrap();
    let actions = |optional: bool| {
        let mut actions: Vec<String> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Sid"].as_str().unwrap().starts_with("Optional") == optional)
            .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        actions.sort();
        actions
    };
    let mut named: Vec<String> = super::reconcile::IAM_ACTIONS
        .iter()
        .chain(super::reconcile::IAM_TENANT_ACTIONS)
        .map(|a| (*a).to_owned())
        .collect();
    named.sort();
    assert_eq!(actions(false), named);
    assert_eq!(actions(true), [super::cache_tags::IAM_ACTION]);
}

/// Items 2 and 15: with two in flight on one distribution, one ListInvalidations answers;
/// when it fails, GetInvalidation answers for the object instead.
#[tokio::test]
async fn a_shared_list_answers_and_a_failed_list_falls_back_to_get() {
    let a = with_status(
        named("a", "uid-a", &["/a"]),
        in_progress_as("IA", SignedDuration::from_secs(30)),
    );
    let b = with_status(
        named("b", "uid-b", &["/b"]),
        in_progress_as("IB", SignedDuration::from_secs(30)),
    );
    let fake = FakeCloudFront::default()
        .holding("E2EXAMPLE", "IA", InvalidationStatus::Completed)
        .holding("E2EXAMPLE", "IB", InvalidationStatus::InProgress);
    let mut h = harness(&a, fake);
    h.cache(&[&a, &b]);
    let (_, done) = h.step(&a).await;
    assert_eq!(done.phase(), Phase::Completed);
    assert_eq!(
        (h.cloudfront.lists(), h.cloudfront.gets()),
        (1, 0),
        "batched"
    );

    // The list fails (IAM without ListInvalidations): GetInvalidation answers.
    let a2 = with_status(
        named("a2", "uid-a2", &["/a2"]),
        in_progress_as("IA2", SignedDuration::from_secs(30)),
    );
    let fake = FakeCloudFront::default()
        .holding("E2EXAMPLE", "IA2", InvalidationStatus::Completed)
        .holding("E2EXAMPLE", "IB", InvalidationStatus::InProgress)
        .on_list(CloudFrontError::service(
            "AccessDenied",
            "no ListInvalidations",
            403,
        ));
    let mut h = harness(&a2, fake);
    h.cache(&[&a2, &b]);
    let (_, done) = h.step(&a2).await;
    assert_eq!(done.phase(), Phase::Completed, "{:?}", done.status);
    assert_eq!((h.cloudfront.lists(), h.cloudfront.gets()), (1, 1));
}

/// Item 15: the scheduler reads the cache: with the wildcard quota held by objects in flight,
/// a new wildcard object waits without any CloudFront call.
#[tokio::test]
async fn a_full_quota_in_the_cache_queues_without_calling_cloudfront() {
    let busy: Vec<CloudFrontInvalidation> = (0..15)
        .map(|i| {
            let mut s = in_progress_as(&format!("IW{i}"), SignedDuration::from_secs(5));
            s.submitted_paths = Some(vec![format!("/w{i}/*")]);
            with_status(
                named(
                    &format!("w{i}"),
                    &format!("uid-w{i}"),
                    &[&format!("/w{i}/*")],
                ),
                s,
            )
        })
        .collect();
    let obj = object(&["/new/*"]);
    let mut h = harness(&obj, FakeCloudFront::default());
    let refs: Vec<&CloudFrontInvalidation> = busy.iter().collect();
    h.cache(&refs);
    let (action, queued) = h.step(&obj).await;
    assert_eq!(queued.phase(), Phase::Queued);
    assert!(h.cloudfront.creates().is_empty());
    assert_eq!(
        action.unwrap(),
        Action::requeue(Settings::default().queue_recheck)
    );
}

/// Item 7: a request that alone exceeds the in-progress quota says so, with its own reason.
#[tokio::test]
async fn a_request_larger_than_the_quota_fails_exceeds_quota() {
    let paths: Vec<String> = (0..16).map(|i| format!("/p{i}/*")).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let obj = object(&refs);
    let mut h = harness(&obj, FakeCloudFront::default());
    let (_, failed) = h.step(&obj).await;
    let s = failed.status.unwrap();
    assert_eq!(failed_reason(&s), "ExceedsQuota");
    assert!(s.message.unwrap().contains("15 wildcard"));
    assert!(h.cloudfront.creates().is_empty());
}

/// Item 4: a status write that keeps failing backs the object's CloudFront calls off
/// exponentially up to the maximum; once it succeeds, one invalidation exists.
#[tokio::test]
async fn a_failing_status_write_backs_off_and_ends_with_one_invalidation() {
    let obj = object(&["/a"]);
    let retry = RetrySettings {
        base: Duration::from_millis(100),
        max: Duration::from_secs(2),
    };
    let settings = Settings {
        retry: retry.clone(),
        ..Settings::default()
    };
    let mut fake = FakeCloudFront::default();
    for _ in 0..9 {
        fake = fake.on_create(Ok(InvalidationStatus::InProgress));
    }
    let mut h = harness_with(&obj, fake, settings);
    h.api.fail_status_writes(true);
    let mut delays = Vec::new();
    for _ in 0..8 {
        let (result, _) = h.step(&obj).await;
        let err = result.expect_err("the write fails");
        delays.push(error_policy(Arc::new(obj.clone()), &err, h.ctx.clone()));
    }
    let expected: Vec<Action> = backoff_delays(&retry, 8)
        .into_iter()
        .map(Action::requeue)
        .collect();
    assert_eq!(delays, expected, "exponential, capped at the maximum");
    assert_eq!(
        *expected.last().unwrap(),
        Action::requeue(backoff_delays(&retry, 8)[7])
    );
    assert!(
        backoff_delays(&retry, 8)[7] >= Duration::from_secs(1),
        "reached the cap"
    );

    h.api.fail_status_writes(false);
    let (result, done) = h.step(&obj).await;
    result.unwrap();
    assert_eq!(done.phase(), Phase::InProgress);
    assert_eq!(h.cloudfront.creates().len(), 9);
    assert_eq!(h.cloudfront.invalidations_created(), 1);
    // The deadline counted from the first attempt even though startTime was never written.
    assert_eq!(done.status.unwrap().start_time, Some(Time(now())));
}

/// Item 8: paths are billed once: not for an acceptance whose write failed, not again for
/// the CallerReference replay that follows.
#[tokio::test]
async fn an_adopted_invalidation_is_billed_once() {
    let obj = object(&["/a", "/b"]);
    let mut h = harness(
        &obj,
        FakeCloudFront::default()
            .on_create(Ok(InvalidationStatus::InProgress))
            .on_create(Ok(InvalidationStatus::InProgress))
            .on_create(Ok(InvalidationStatus::InProgress)),
    );
    h.api.fail_status_writes(true);
    assert!(h.step(&obj).await.0.is_err());
    let billed = |h: &Harness| {
        let text = h.ctx.observability.metrics.encode();
        text.lines()
            .find(|l| l.starts_with("cloudfront_invalidation_paths_billed_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
    };
    assert_eq!(
        billed(&h),
        None,
        "nothing billed for an unwritten acceptance"
    );
    h.api.fail_status_writes(false);
    h.step(&obj).await.0.unwrap();
    // A stale cache (the write not seen yet) makes it submit again: CloudFront replays.
    h.step(&obj).await.0.unwrap();
    assert_eq!(h.cloudfront.creates().len(), 3);
    assert_eq!(h.cloudfront.invalidations_created(), 1);
    assert_eq!(billed(&h).as_deref(), Some("2"));
}

/// Item 8: a completion whose write fails is observed (metrics, completion model) only once
/// the write succeeds, and once.
#[tokio::test]
async fn completion_metrics_follow_the_write() {
    let obj = with_status(object(&["/a"]), in_progress(SignedDuration::from_secs(50)));
    let mut h = harness(
        &obj,
        FakeCloudFront::default()
            .on_get(Ok(InvalidationStatus::Completed))
            .on_get(Ok(InvalidationStatus::Completed)),
    );
    let count = |h: &Harness| {
        h.ctx
            .observability
            .metrics
            .encode()
            .lines()
            .find(|l| l.starts_with("cloudfront_invalidation_submit_to_completed_seconds_count"))
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
    };
    h.api.fail_status_writes(true);
    assert!(h.step(&obj).await.0.is_err());
    assert_eq!(count(&h).as_deref(), Some("0"));
    let window = h.ctx.cloudfront.model.window("E2EXAMPLE");
    assert_eq!(
        window,
        cfinv_cloudfront::polling::CompletionModel::default().window("E2EXAMPLE")
    );
    h.api.fail_status_writes(false);
    let (_, done) = h.step(&obj).await;
    assert_eq!(done.phase(), Phase::Completed);
    assert_eq!(count(&h).as_deref(), Some("1"));
    assert_ne!(
        h.ctx.cloudfront.model.window("E2EXAMPLE"),
        window,
        "learned once"
    );
}

/// Item 5: a spec edit in the Pending-with-retry window changes nothing that may be in
/// CloudFront: the retry sends what the first attempt sent, and a warning says so.
#[tokio::test]
async fn a_spec_edit_while_pending_with_retry_resends_what_was_sent() {
    let obj = object(&["/a"]);
    let mut h = harness(
        &obj,
        FakeCloudFront::default()
            .on_create(Err(throttled()))
            .on_create(Ok(InvalidationStatus::InProgress)),
    );
    let (_, pending) = h.step(&obj).await;
    assert_eq!(pending.phase(), Phase::Pending);
    let mut edited = pending.clone();
    edited.spec.caller_reference = Some("another".into());
    edited.spec.distribution_id = Some("EOTHER".into());
    edited.spec.paths = vec!["/b".into()];
    edited.metadata.generation = Some(2);
    let (_, submitted) = h.step(&edited).await;

    let creates = h.cloudfront.creates();
    assert_eq!(creates[0], creates[1], "the same request both times");
    assert_eq!(creates[1].distribution_id, "E2EXAMPLE");
    let s = submitted.status.unwrap();
    assert_eq!(s.phase, Some(Phase::InProgress));
    assert_eq!(s.distribution_id.as_deref(), Some("E2EXAMPLE"));
    assert_eq!(s.observed_generation, Some(2));
    let warnings: Vec<_> = h
        .api
        .events()
        .into_iter()
        .filter(|(t, _)| t == "Warning")
        .collect();
    assert_eq!(
        warnings,
        vec![("Warning".into(), "SpecChangeIgnored".into())]
    );
}

/// Item 5: polling asks about the distribution the invalidation was submitted to, whatever
/// the spec says now.
#[tokio::test]
async fn polling_reads_the_distribution_from_the_status() {
    let mut obj = with_status(object(&["/a"]), in_progress(SignedDuration::from_secs(30)));
    obj.spec.distribution_id = Some("EEDITED".into());
    obj.metadata.generation = Some(2);
    let mut h = harness(
        &obj,
        FakeCloudFront::default().on_get(Ok(InvalidationStatus::InProgress)),
    );
    let (_, after) = h.step(&obj).await;
    assert_eq!(
        h.cloudfront.got(),
        vec![("E2EXAMPLE".to_owned(), "I0000000000001".to_owned())]
    );
    assert_eq!(after.phase(), Phase::InProgress);
    assert!(
        h.api
            .events()
            .contains(&("Warning".into(), "SpecChangeIgnored".into()))
    );
}

#[tokio::test]
async fn spec_edits_after_completion_are_recorded_once_and_ignored() {
    let mut status = in_progress(SignedDuration::from_secs(100));
    status.phase = Some(Phase::Completed);
    let mut obj = with_status(object(&["/a"]), status);
    obj.metadata.generation = Some(2);
    let mut h = harness(&obj, FakeCloudFront::default());

    let (_, after) = h.step(&obj).await;

    let s = &h.api.status_writes()[0];
    assert_eq!(s.observed_generation, Some(2));
    assert_eq!(s.phase, Some(Phase::Completed));
    assert_eq!(
        h.api.events(),
        vec![("Warning".into(), "SpecChangeIgnored".into())]
    );
    h.api.forget();
    h.step(&after).await.0.unwrap();
    assert!(h.api.events().is_empty(), "once");
    assert_eq!(h.cloudfront.gets() + h.cloudfront.creates().len(), 0);
}

fn namespace(
    name: &str,
    annotation: Option<&str>,
) -> kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Namespace> {
    use crate::tenancy::ALLOWED_DISTRIBUTIONS_ANNOTATION;
    let mut ns = kube::core::PartialObjectMeta::<k8s_openapi::api::core::v1::Namespace>::default();
    ns.metadata.name = Some(name.into());
    ns.metadata.annotations =
        annotation.map(|a| [(ALLOWED_DISTRIBUTIONS_ANNOTATION.to_owned(), a.to_owned())].into());
    ns
}

#[tokio::test]
async fn tenancy_denial_fails_not_allowed_with_zero_cloudfront_calls() {
    use crate::tenancy::TenancyGuard;

    let obj = object(&["/a"]);
    let (client, api) = ApiServer::start(&obj);
    let cloudfront = Arc::new(FakeCloudFront::default());
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Apply(namespace("web", Some("EOTHER"))));
    let ctx = Arc::new(
        Context::new(client, cloudfront.clone(), Settings::default())
            .at(now())
            .with_tenancy(TenancyGuard::namespace_annotation(reader)),
    );

    reconcile(Arc::new(obj), ctx).await.unwrap();

    assert_eq!(cloudfront.creates().len(), 0);
    let s = &api.status_writes()[0];
    assert_eq!(s.phase, Some(Phase::Failed));
    let failed = s.conditions.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(failed.reason, "NotAllowed");
    assert!(
        failed.message.contains("cluster administrator"),
        "{}",
        failed.message
    );
}

/// Item 6: a namespace the cache has not seen yet is waited for, never denied.
#[tokio::test]
async fn a_namespace_not_yet_in_the_cache_is_waited_for() {
    use crate::tenancy::TenancyGuard;

    let obj = object(&["/a"]);
    let (client, api) = ApiServer::start(&obj);
    let cloudfront =
        Arc::new(FakeCloudFront::default().on_create(Ok(InvalidationStatus::InProgress)));
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Apply(namespace("default", None)));
    let ctx = Arc::new(
        Context::new(client, cloudfront.clone(), Settings::default())
            .at(now())
            .with_tenancy(TenancyGuard::namespace_annotation(reader)),
    );
    reconcile(Arc::new(obj.clone()), ctx.clone()).await.unwrap();
    let s = api.status_writes().pop().unwrap();
    assert_eq!(s.phase, Some(Phase::Pending));
    assert!(
        s.message
            .unwrap()
            .contains("waiting for the namespace cache")
    );
    assert!(cloudfront.creates().is_empty());

    writer.apply_watcher_event(&watcher::Event::Apply(namespace("web", Some("E2EXAMPLE"))));
    reconcile(Arc::new(obj), ctx).await.unwrap();
    assert_eq!(
        api.status_writes().pop().unwrap().phase,
        Some(Phase::InProgress)
    );
    assert_eq!(cloudfront.creates().len(), 1);
}

/// Item 9: what is remembered per object goes when the object goes, by its delete event or,
/// when the watch missed that, by the next relist.
#[tokio::test]
async fn per_object_memory_is_freed_when_objects_are_deleted() {
    let a = named("a", "uid-a", &["/a"]);
    let b = named("b", "uid-b", &["/b"]);
    let mut fake = FakeCloudFront::default();
    for _ in 0..2 {
        fake = fake.on_create(Err(throttled()));
    }
    let mut h = harness(&a, fake);
    h.api.fail_status_writes(true);
    for obj in [&a, &b] {
        let _ = h.step(obj).await;
        h.ctx
            .retries
            .next_delay(obj.metadata.uid.as_deref().unwrap());
        h.ctx
            .observability
            .seen_running(obj.metadata.uid.as_deref().unwrap(), now());
    }
    assert!(h.ctx.retries.tracked() >= 2 && h.ctx.observability.tracked() >= 2);

    let store = h.store.clone();
    h.ctx
        .on_watch_event(&watcher::Event::Delete(a.clone()), &store);
    h.cache
        .apply_watcher_event(&watcher::Event::Delete(a.clone()));
    // b goes while the watch is down: the relist (Init, InitApply of what is left, InitDone)
    // no longer holds it.
    for event in [watcher::Event::Init, watcher::Event::InitDone] {
        h.cache.apply_watcher_event(&event);
        h.ctx.on_watch_event(&event, &store);
    }
    assert_eq!(h.ctx.retries.tracked(), 0);
    assert_eq!(h.ctx.observability.tracked(), 0);
}

#[tokio::test]
async fn metrics_count_billed_paths_failures_and_completion() {
    let obj = object(&["/a", "/b", "/b"]);
    let mut h = harness(
        &obj,
        FakeCloudFront::default()
            .on_create(Ok(InvalidationStatus::InProgress))
            .on_get(Ok(InvalidationStatus::InProgress))
            .on_get(Ok(InvalidationStatus::Completed)),
    );
    let mut current = obj.clone();
    for _ in 0..3 {
        let (result, next) = h.step(&current).await;
        result.unwrap();
        current = next;
    }
    assert_eq!(current.phase(), Phase::Completed);
    let text = h.ctx.observability.metrics.encode();
    for line in [
        "cloudfront_invalidation_paths_billed_total{distribution=\"E2EXAMPLE\"} 2",
        "cloudfront_invalidation_reconciles_total{result=\"ok\"} 3",
        "cloudfront_invalidation_submit_to_completed_seconds_count 1",
        "cloudfront_invalidation_detection_delay_seconds_count 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

// ---------- cache tags and distribution tenants ----------

#[path = "cache_tags_tests.rs"]
mod cache_tags_tests;

fn tenant_object(paths: &[&str]) -> CloudFrontInvalidation {
    let mut obj = object(paths);
    obj.spec.distribution_id = None;
    obj.spec.distribution_tenant_id = Some("dt_2yMvQgam3QkJo2z54FDl91dk1AB".into());
    obj
}

#[tokio::test]
async fn both_ids_or_neither_fail_without_any_cloudfront_call() {
    for (what, distribution, tenant) in [
        ("both", Some("E2EXAMPLE"), Some("dt_abc")),
        ("neither", None, None),
    ] {
        let mut obj = object(&["/index.html"]);
        obj.spec.distribution_id = distribution.map(Into::into);
        obj.spec.distribution_tenant_id = tenant.map(Into::into);
        // No scripted answers: any CloudFront call would fail the test.
        let h = harness(&obj, FakeCloudFront::default());

        let action = reconcile(Arc::new(obj), h.ctx.clone()).await.unwrap();

        assert_eq!(action, Action::await_change(), "{what}");
        assert_eq!(h.cloudfront.calls(), 0, "{what}: no AWS call");
        let writes = h.api.status_writes();
        assert_eq!(writes.len(), 1, "{what}");
        assert_eq!(writes[0].phase, Some(Phase::Failed), "{what}");
        let message = writes[0].message.clone().unwrap_or_default();
        assert!(
            message.contains("exactly one of") && message.contains("rule: one-target"),
            "{what}: {message}"
        );
        assert_eq!(
            h.api.events(),
            vec![("Warning".into(), "InvalidTarget".into())]
        );
    }
}

#[tokio::test]
async fn tenant_object_goes_through_the_tenant_operations() {
    let obj = tenant_object(&["/index.html", "#product:electronics"]);
    let h = harness(
        &obj,
        FakeCloudFront::default()
            .on_create(Ok(InvalidationStatus::InProgress))
            .on_get(Ok(InvalidationStatus::Completed)),
    );

    reconcile(Arc::new(obj.clone()), h.ctx.clone())
        .await
        .unwrap();

    let tenant_creates = h.cloudfront.tenant_creates();
    assert_eq!(tenant_creates.len(), 1);
    assert_eq!(
        tenant_creates[0].distribution_id,
        "dt_2yMvQgam3QkJo2z54FDl91dk1AB"
    );
    assert_eq!(h.cloudfront.creates().len(), 0, "never CreateInvalidation");
    let status = h.api.status_writes().pop().unwrap();
    assert_eq!(status.phase, Some(Phase::InProgress));
    assert_eq!(
        status.target.as_deref(),
        Some("tenant/dt_2yMvQgam3QkJo2z54FDl91dk1AB")
    );
    assert_eq!(
        status.distribution_tenant_id.as_deref(),
        Some("dt_2yMvQgam3QkJo2z54FDl91dk1AB")
    );
    assert_eq!(status.distribution_id, None);
    assert_eq!((status.path_count, status.tag_count), (Some(1), Some(1)));

    // The next look asks the tenant operation, for the tenant named in the status.
    let submitted = with_status(obj, status);
    h.api.forget();
    reconcile(Arc::new(submitted), h.ctx.clone()).await.unwrap();
    assert_eq!(h.cloudfront.tenant_gets(), 1);
    assert_eq!(h.cloudfront.gets(), 0, "never GetInvalidation");
    let done = h.api.status_writes().pop().unwrap();
    assert_eq!(done.phase, Some(Phase::Completed));
    assert_eq!(h.cloudfront.calls(), 2);
}

#[tokio::test]
async fn unknown_tenant_fails_after_one_call_naming_the_field() {
    let obj = tenant_object(&["/index.html"]);
    let h = harness(
        &obj,
        FakeCloudFront::default().on_create(Err(CloudFrontError::service(
            "EntityNotFound",
            "The specified distribution tenant does not exist.",
            404,
        ))),
    );

    let action = reconcile(Arc::new(obj), h.ctx.clone()).await.unwrap();

    assert_eq!(action, Action::await_change());
    assert_eq!(h.cloudfront.calls(), 1);
    let status = h.api.status_writes().pop().unwrap();
    assert_eq!(status.phase, Some(Phase::Failed));
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("distribution tenant dt_2yMvQgam3QkJo2z54FDl91dk1AB does not exist")
            && message.contains("spec.distributionTenantId")
            && message.contains("CreateInvalidationForDistributionTenant"),
        "{message}"
    );
    assert_eq!(
        h.api.events(),
        vec![("Warning".into(), "DistributionTenantNotFound".into())]
    );
}

#[tokio::test]
async fn mixed_batch_sends_one_spelling_per_tag_and_counts_paths_and_tags() {
    let obj = object(&[
        "#product:electronics",
        "#Product:Electronics",
        "/index.html",
    ]);
    let h = harness(
        &obj,
        FakeCloudFront::default().on_create(Ok(InvalidationStatus::InProgress)),
    );

    reconcile(Arc::new(obj), h.ctx.clone()).await.unwrap();

    let creates = h.cloudfront.creates();
    assert_eq!(creates.len(), 1);
    assert_eq!(
        creates[0].paths,
        vec!["#product:electronics", "/index.html"]
    );
    let status = h.api.status_writes().pop().unwrap();
    assert_eq!(status.billed_paths, Some(2));
    assert_eq!((status.path_count, status.tag_count), (Some(1), Some(1)));
    assert_eq!(status.target.as_deref(), Some("distribution/E2EXAMPLE"));
    assert_eq!(status.distribution_id.as_deref(), Some("E2EXAMPLE"));
}
