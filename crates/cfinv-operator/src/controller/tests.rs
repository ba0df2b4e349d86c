//! The reconcile state machine against a mocked Kubernetes API (tower-test) and a scripted fake
//! CloudFront. Every test counts the CloudFront calls and Kubernetes writes it causes.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use http::{Request, Response, StatusCode};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Client, client::Body, runtime::controller::Action};
use serde_json::{Value, json};

use super::{Context, Settings, reconcile};
use cfinv_api::crd::{
    CloudFrontInvalidation, CloudFrontInvalidationSpec, CloudFrontInvalidationStatus, Phase,
};
use cfinv_cloudfront::{
    CloudFront, CloudFrontError, CreateInvalidation, Invalidation, InvalidationPage,
    InvalidationStatus,
};

// ---------- fake CloudFront ----------

type Reply = Result<InvalidationStatus, CloudFrontError>;

/// Scripted answers, plus CloudFront's CallerReference idempotency so the crash test is real:
/// the same reference returns the same invalidation.
#[derive(Default)]
struct FakeCloudFront {
    create_replies: Mutex<VecDeque<Reply>>,
    get_replies: Mutex<VecDeque<Reply>>,
    creates: Mutex<Vec<CreateInvalidation>>,
    gets: Mutex<Vec<String>>,
    by_reference: Mutex<HashMap<String, String>>,
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
    fn creates(&self) -> Vec<CreateInvalidation> {
        self.creates.lock().unwrap().clone()
    }
    fn gets(&self) -> usize {
        self.gets.lock().unwrap().len()
    }
    fn invalidations_created(&self) -> usize {
        self.by_reference.lock().unwrap().len()
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
        let mut refs = self.by_reference.lock().unwrap();
        let n = refs.len();
        let id = refs
            .entry(request.caller_reference.clone())
            .or_insert_with(|| format!("I{n:013}"))
            .clone();
        Ok(Invalidation {
            id,
            status,
            create_time: Some(Timestamp::now()),
            caller_reference: Some(request.caller_reference.clone()),
            paths: request.paths.clone(),
        })
    }

    async fn get_invalidation(
        &self,
        _distribution_id: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        self.gets.lock().unwrap().push(id.to_owned());
        let status = self
            .get_replies
            .lock()
            .unwrap()
            .pop_front()
            .expect("unexpected GetInvalidation call")?;
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
        _: &str,
        _: Option<&str>,
        _: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        panic!("the reconciler does not list")
    }
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

fn object(paths: &[&str]) -> CloudFrontInvalidation {
    let mut obj = CloudFrontInvalidation::new(
        "site",
        CloudFrontInvalidationSpec {
            distribution_id: "E2EXAMPLE".into(),
            paths: paths.iter().map(|p| (*p).into()).collect(),
            caller_reference: None,
            timeout_seconds: 900,
            ttl_seconds_after_finished: None,
        },
    );
    obj.metadata.namespace = Some("web".into());
    obj.metadata.uid = Some("5f1c0b6e-0000-4000-8000-000000000001".into());
    obj.metadata.generation = Some(1);
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
    let started = Timestamp::now() - started_ago;
    CloudFrontInvalidationStatus {
        phase: Some(Phase::InProgress),
        invalidation_id: Some("I0000000000001".into()),
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
}

fn harness(obj: &CloudFrontInvalidation, cloudfront: FakeCloudFront) -> Harness {
    let (client, api) = ApiServer::start(obj);
    let cloudfront = Arc::new(cloudfront);
    let ctx = Arc::new(Context::new(
        client,
        cloudfront.clone(),
        Settings::default(),
    ));
    Harness {
        cloudfront,
        api,
        ctx,
    }
}

fn throttled() -> CloudFrontError {
    CloudFrontError::service("Throttling", "Rate exceeded", 400)
}

fn requeue_after(action: &Action) -> Option<Duration> {
    // Action has no accessor; its Debug output carries the Duration's Debug form ("1.5s", "700ms").
    let text = format!("{action:?}");
    let inner = text.split("Some(").nth(1)?.split(')').next()?;
    let (number, unit) = inner.split_at(inner.find(|c: char| c.is_alphabetic() || c == 'µ')?);
    let n: f64 = number.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "ms" => n / 1e3,
        "µs" => n / 1e6,
        "ns" => n / 1e9,
        other => panic!("unexpected unit {other} in {text}"),
    };
    Some(Duration::from_secs_f64(secs))
}

/// What the polling schedule says for one invalidation on its own of a new distribution.
fn expected_poll(since_submit: Duration) -> Duration {
    let window = cfinv_cloudfront::polling::CompletionModel::default().window("E2EXAMPLE");
    Settings::default()
        .poll
        .next_poll(since_submit, window, false)
}

// ---------- tests ----------

#[tokio::test]
async fn new_object_is_submitted_once_with_its_uid_as_caller_reference() {
    let obj = object(&["index.html", "/index.html", "/img/*", "/img/a.png"]);
    let h = harness(
        &obj,
        FakeCloudFront::default().on_create(Ok(InvalidationStatus::InProgress)),
    );

    let action = reconcile(Arc::new(obj.clone()), h.ctx.clone())
        .await
        .unwrap();

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
    assert_eq!(s.observed_generation, Some(1));
    assert!(s.start_time.is_some() && s.create_time.is_some());
    assert_eq!(h.api.events(), vec![("Normal".into(), "Submitted".into())]);
    assert_eq!(requeue_after(&action), Some(expected_poll(Duration::ZERO)));
}

#[tokio::test]
async fn spec_caller_reference_wins_over_the_uid() {
    let mut obj = object(&["/a"]);
    obj.spec.caller_reference = Some("release-42".into());
    let h = harness(
        &obj,
        FakeCloudFront::default().on_create(Ok(InvalidationStatus::InProgress)),
    );
    reconcile(Arc::new(obj), h.ctx.clone()).await.unwrap();
    assert_eq!(h.cloudfront.creates()[0].caller_reference, "release-42");
}

#[tokio::test]
async fn invalid_paths_fail_without_any_cloudfront_call() {
    // Possible on clusters without CEL, where the API server cannot reject it.
    let obj = object(&["/assets/app.*.js", "/ok"]);
    let h = harness(&obj, FakeCloudFront::default());

    let action = reconcile(Arc::new(obj), h.ctx.clone()).await.unwrap();

    assert!(h.cloudfront.creates().is_empty());
    let s = &h.api.status_writes()[0];
    assert_eq!(s.phase, Some(Phase::Failed));
    let failed = s.conditions.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_str()),
        ("True", "InvalidPaths")
    );
    assert!(
        s.message.as_deref().unwrap().contains("spec.paths[0]"),
        "{:?}",
        s.message
    );
    assert_eq!(
        h.api.events(),
        vec![("Warning".into(), "InvalidPaths".into())]
    );
    assert_eq!(requeue_after(&action), None);
}

#[tokio::test]
async fn polling_a_running_invalidation_writes_nothing() {
    let obj = with_status(object(&["/a"]), in_progress(SignedDuration::from_secs(40)));
    let h = harness(
        &obj,
        FakeCloudFront::default()
            .on_get(Ok(InvalidationStatus::InProgress))
            .on_get(Ok(InvalidationStatus::InProgress)),
    );

    // The fixture lacks the operator's conditions, so the first poll may write them once...
    let action = reconcile(Arc::new(obj.clone()), h.ctx.clone())
        .await
        .unwrap();
    let current = h
        .api
        .status_writes()
        .pop()
        .map_or(obj.clone(), |s| with_status(obj.clone(), s));
    h.api.forget();
    // ...and a poll of what the operator wrote writes nothing.
    let action2 = reconcile(Arc::new(current), h.ctx.clone()).await.unwrap();

    assert_eq!(h.cloudfront.gets(), 2);
    assert!(h.cloudfront.creates().is_empty(), "never submitted twice");
    assert!(
        h.api.status_writes().is_empty(),
        "nothing changed, nothing written"
    );
    assert!(h.api.events().is_empty());
    // Requeued on the polling schedule, ~40 s after submission.
    let expected = expected_poll(Duration::from_secs(40)).as_secs_f64();
    for a in [&action, &action2] {
        let got = requeue_after(a).unwrap().as_secs_f64();
        assert!(
            (got - expected).abs() < 1.5,
            "requeue in {got}s, schedule says {expected}s"
        );
    }
}

#[tokio::test]
async fn completion_is_written_once_with_an_event_and_no_requeue() {
    let obj = with_status(object(&["/a"]), in_progress(SignedDuration::from_secs(50)));
    let h = harness(
        &obj,
        FakeCloudFront::default().on_get(Ok(InvalidationStatus::Completed)),
    );

    let action = reconcile(Arc::new(obj), h.ctx.clone()).await.unwrap();

    let s = &h.api.status_writes()[0];
    assert_eq!(s.phase, Some(Phase::Completed));
    assert!(s.completion_time.is_some());
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
    assert_eq!(requeue_after(&action), None);
}

#[tokio::test]
async fn finished_objects_cost_nothing() {
    for phase in [Phase::Completed, Phase::Failed] {
        let mut status = in_progress(SignedDuration::from_secs(100));
        status.phase = Some(phase);
        let obj = with_status(object(&["/a"]), status);
        // The fake panics on any call; the mocked API server records any write.
        let h = harness(&obj, FakeCloudFront::default());
        let action = reconcile(Arc::new(obj), h.ctx.clone()).await.unwrap();
        assert_eq!(requeue_after(&action), None, "{phase}");
        assert!(h.api.status_writes().is_empty(), "{phase}");
        assert_eq!(h.cloudfront.gets() + h.cloudfront.creates().len(), 0);
    }
}

#[tokio::test]
async fn crash_between_submit_and_status_write_adopts_the_same_invalidation() {
    let obj = object(&["/index.html"]);
    let h = harness(
        &obj,
        FakeCloudFront::default()
            .on_create(Ok(InvalidationStatus::InProgress))
            .on_create(Ok(InvalidationStatus::InProgress)),
    );
    // CloudFront accepts, then the status write fails: as if the operator died right there.
    h.api.fail_status_writes(true);
    assert!(
        reconcile(Arc::new(obj.clone()), h.ctx.clone())
            .await
            .is_err()
    );
    // The next reconcile sees no status and submits again, with the same CallerReference.
    h.api.fail_status_writes(false);
    h.api.forget();
    reconcile(Arc::new(obj), h.ctx.clone()).await.unwrap();

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

#[tokio::test]
async fn timeout_fails_without_calling_cloudfront_and_says_it_may_still_complete() {
    let obj = with_status(object(&["/a"]), in_progress(SignedDuration::from_secs(901)));
    let h = harness(&obj, FakeCloudFront::default());

    let action = reconcile(Arc::new(obj), h.ctx.clone()).await.unwrap();

    assert_eq!(h.cloudfront.gets(), 0);
    let s = &h.api.status_writes()[0];
    assert_eq!(s.phase, Some(Phase::Failed));
    let failed = s.conditions.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(failed.reason, "Timeout");
    assert!(s.message.as_deref().unwrap().contains("may still complete"));
    assert_eq!(requeue_after(&action), None);
}

#[tokio::test]
async fn the_next_poll_never_overshoots_the_deadline() {
    let mut obj = object(&["/a"]);
    obj.spec.timeout_seconds = 60;
    let obj = with_status(obj, in_progress(SignedDuration::from_secs(58)));
    let h = harness(
        &obj,
        FakeCloudFront::default().on_get(Ok(InvalidationStatus::InProgress)),
    );
    let action = reconcile(Arc::new(obj), h.ctx.clone()).await.unwrap();
    let after = requeue_after(&action).unwrap();
    assert!(
        after <= Duration::from_secs(2),
        "requeue in {after:?}, deadline in 2 s"
    );
}

#[tokio::test]
async fn too_many_in_progress_queues_and_retries_instead_of_failing() {
    let obj = object(&["/*"]);
    let busy = CloudFrontError::service("TooManyInvalidationsInProgress", "busy", 400);
    let h = harness(
        &obj,
        FakeCloudFront::default()
            .on_create(Err(busy.clone()))
            .on_create(Err(busy)),
    );

    let action = reconcile(Arc::new(obj.clone()), h.ctx.clone())
        .await
        .unwrap();
    let s = h.api.status_writes()[0].clone();
    assert_eq!(s.phase, Some(Phase::Queued));
    assert!(requeue_after(&action).is_some());

    // Still busy: same status, so nothing is written again.
    h.api.forget();
    let again = with_status(obj, s);
    reconcile(Arc::new(again), h.ctx.clone()).await.unwrap();
    assert!(h.api.status_writes().is_empty());
    assert_eq!(h.cloudfront.creates().len(), 2);
}

#[tokio::test]
async fn retryable_errors_back_off_then_succeed() {
    let obj = object(&["/a"]);
    let h = harness(
        &obj,
        FakeCloudFront::default()
            .on_create(Err(throttled()))
            .on_create(Err(CloudFrontError::service(
                "ServiceUnavailable",
                "down",
                503,
            )))
            .on_create(Err(CloudFrontError::network("connection reset")))
            .on_create(Ok(InvalidationStatus::InProgress)),
    );
    let mut delays = Vec::new();
    let mut current = obj.clone();
    for _ in 0..4 {
        let action = reconcile(Arc::new(current.clone()), h.ctx.clone())
            .await
            .unwrap();
        delays.push(requeue_after(&action).unwrap());
        if let Some(s) = h.api.status_writes().pop() {
            current = with_status(obj.clone(), s);
        }
    }
    assert_eq!(
        current.status.as_ref().unwrap().phase,
        Some(Phase::InProgress)
    );
    // Equal-jitter backoff: attempt n waits between 2^n/2 and 2^n seconds.
    for (n, d) in delays[..3].iter().enumerate() {
        let exp = Duration::from_secs(1 << n);
        assert!(*d >= exp / 2 && *d <= exp, "attempt {n}: {d:?}");
    }
    assert_eq!(h.cloudfront.creates().len(), 4);
    assert_eq!(h.cloudfront.invalidations_created(), 1);
}

#[tokio::test]
async fn terminal_errors_fail_with_their_reason() {
    let cases = [
        ("NoSuchDistribution", 404, "DistributionNotFound"),
        ("AccessDenied", 403, "AccessDenied"),
        (
            "InvalidationBatchAlreadyExists",
            409,
            "CallerReferenceConflict",
        ),
        ("BatchTooLarge", 413, "BatchTooLarge"),
    ];
    for (code, http, reason) in cases {
        let obj = object(&["/a"]);
        let h = harness(
            &obj,
            FakeCloudFront::default().on_create(Err(CloudFrontError::service(code, "no", http))),
        );
        let action = reconcile(Arc::new(obj), h.ctx.clone()).await.unwrap();
        let s = &h.api.status_writes()[0];
        assert_eq!(s.phase, Some(Phase::Failed), "{code}");
        let failed = s.conditions.iter().find(|c| c.type_ == "Failed").unwrap();
        assert_eq!(failed.reason, reason, "{code}");
        assert!(
            s.message.as_deref().unwrap().contains(code),
            "{code}: {:?}",
            s.message
        );
        assert_eq!(requeue_after(&action), None, "{code}");
        assert_eq!(h.api.events(), vec![("Warning".into(), reason.into())]);
    }
}

#[tokio::test]
async fn poll_errors_keep_the_invalidation_and_retry() {
    let obj = with_status(object(&["/a"]), in_progress(SignedDuration::from_secs(30)));
    let h = harness(
        &obj,
        FakeCloudFront::default().on_get(Err(CloudFrontError::service("InternalError", "x", 500))),
    );
    let action = reconcile(Arc::new(obj), h.ctx.clone()).await.unwrap();
    let s = &h.api.status_writes()[0];
    assert_eq!(s.phase, Some(Phase::InProgress));
    assert!(
        s.message
            .as_deref()
            .unwrap()
            .contains("GetInvalidation failed, retrying")
    );
    assert!(requeue_after(&action).is_some());
    assert!(h.cloudfront.creates().is_empty());
}

#[tokio::test]
async fn spec_edits_after_completion_are_recorded_once_and_ignored() {
    let mut status = in_progress(SignedDuration::from_secs(100));
    status.phase = Some(Phase::Completed);
    let mut obj = with_status(object(&["/a"]), status);
    obj.metadata.generation = Some(2);
    let h = harness(&obj, FakeCloudFront::default());

    reconcile(Arc::new(obj.clone()), h.ctx.clone())
        .await
        .unwrap();

    let s = &h.api.status_writes()[0];
    assert_eq!(s.observed_generation, Some(2));
    assert_eq!(s.phase, Some(Phase::Completed));
    assert_eq!(
        h.api.events(),
        vec![("Warning".into(), "SpecChangeIgnored".into())]
    );
    assert_eq!(h.cloudfront.gets() + h.cloudfront.creates().len(), 0);
}

#[tokio::test]
async fn tenancy_denial_fails_not_allowed_with_zero_cloudfront_calls() {
    use crate::tenancy::{ALLOWED_DISTRIBUTIONS_ANNOTATION, TenancyGuard};
    use k8s_openapi::api::core::v1::Namespace;
    use kube::{
        core::PartialObjectMeta,
        runtime::{reflector, watcher},
    };

    let obj = object(&["/a"]);
    let (client, api) = ApiServer::start(&obj);
    let cloudfront = Arc::new(FakeCloudFront::default());
    let (reader, mut writer) = reflector::store();
    let mut ns = PartialObjectMeta::<Namespace>::default();
    ns.metadata.name = Some("web".into());
    ns.metadata.annotations = Some(
        [(
            ALLOWED_DISTRIBUTIONS_ANNOTATION.to_owned(),
            "EOTHER".to_owned(),
        )]
        .into(),
    );
    writer.apply_watcher_event(&watcher::Event::Apply(ns));
    let ctx = Arc::new(
        Context::new(client, cloudfront.clone(), Settings::default())
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

#[tokio::test]
async fn metrics_count_billed_paths_failures_and_completion() {
    let obj = object(&["/a", "/b", "/b"]);
    let h = harness(
        &obj,
        FakeCloudFront::default()
            .on_create(Ok(InvalidationStatus::InProgress))
            .on_get(Ok(InvalidationStatus::InProgress))
            .on_get(Ok(InvalidationStatus::Completed)),
    );
    let mut current = obj.clone();
    for _ in 0..3 {
        reconcile(Arc::new(current.clone()), h.ctx.clone())
            .await
            .unwrap();
        if let Some(s) = h.api.status_writes().pop() {
            current = with_status(obj.clone(), s);
        }
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
