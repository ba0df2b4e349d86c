//! The one-shot CLI end to end: the real binary as a subprocess against an in-process
//! simulator on a fast clock. Covers every exit code, idempotent retries, the quota wait,
//! timeouts, dry runs, manifests, `list` and `get` (for distributions and tenants).

use std::process::Stdio;
use std::time::{Duration, Instant};

use cloudfront_sim::{
    Completion, CountersSnapshot, FaultConfig, Operation, Simulator, SimulatorBuilder,
    SimulatorHandle,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cloudfront-invalidation-operator");
const DIST: &str = "E2EXAMPLE";
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cloudfrontinvalidation.yaml"
);

/// Fast polling, backoff and progress lines, so tests take a second or two.
const FAST: &[&str] = &[
    "--poll-min-interval",
    "100ms",
    "--poll-max-interval",
    "300ms",
    "--retry-base-delay",
    "100ms",
    "--retry-max-delay",
    "300ms",
    "--progress-interval",
    "300ms",
];

/// The outcome of one run of the binary.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    fn expect(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code; {self:#?}");
        self
    }
}

/// How to run the binary.
struct Cmd {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    credentials: bool,
    stdin: Option<String>,
}

fn cmd(args: &[&str]) -> Cmd {
    Cmd {
        args: args.iter().map(|s| s.to_string()).collect(),
        envs: Vec::new(),
        credentials: true,
        stdin: None,
    }
}

impl Cmd {
    /// Adds `--endpoint-url` (a flag of every subcommand, so it goes last).
    fn at(mut self, sim: &SimulatorHandle) -> Self {
        self.args.push("--endpoint-url".into());
        self.args.push(sim.endpoint_url());
        self
    }

    fn fast(mut self) -> Self {
        self.args.extend(FAST.iter().map(|s| s.to_string()));
        self
    }

    fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    fn without_credentials(mut self) -> Self {
        self.credentials = false;
        self
    }

    fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.into());
        self
    }

    async fn run(self) -> Run {
        let mut c = tokio::process::Command::new(BIN);
        c.args(&self.args)
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_CLOUDFRONT")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            // Nothing from the machine's AWS setup, and never the instance metadata service.
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if self.credentials {
            c.env("AWS_ACCESS_KEY_ID", "AKIDCLITEST")
                .env("AWS_SECRET_ACCESS_KEY", "cli-test-secret");
        }
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        let started = Instant::now();
        let mut child = c.spawn().expect("the binary starts");
        if let Some(text) = self.stdin {
            use tokio::io::AsyncWriteExt;
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin.write_all(text.as_bytes()).await.expect("write stdin");
        }
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("the binary ends within a minute")
            .expect("the binary runs");
        Run {
            code: out.status.code().expect("exited, not killed"),
            stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
            took: started.elapsed(),
        }
    }
}

async fn start(builder: SimulatorBuilder) -> SimulatorHandle {
    builder.start().await.expect("the simulator starts")
}

/// Invalidations complete after a simulated minute: one real second.
async fn one_second_sim() -> SimulatorHandle {
    start(
        Simulator::builder()
            .distribution(DIST)
            .completion(Completion::Fixed(Duration::from_secs(60)))
            .time_scale(60.0),
    )
    .await
}

fn total_calls(c: &CountersSnapshot) -> u64 {
    c.calls.values().flat_map(|m| m.values()).sum()
}

// ---- invalidate: success ----

#[tokio::test]
async fn submit_and_wait_completes_with_json_output() {
    let sim = one_second_sim().await;
    let run = cmd(&[
        "invalidate",
        "--distribution-id",
        DIST,
        "--path",
        "/index.html",
        "img/*",
        "/img/logo.png",
        "--path",
        "/index.html",
        "--wait",
        "--idempotency-key",
        "pipeline-1",
        "--output",
        "json",
    ])
    .fast()
    .at(&sim)
    .run()
    .await;
    run.expect(0);
    let v = run.json();
    assert_eq!(v["outcome"], "completed");
    assert_eq!(v["exitCode"], 0);
    assert_eq!(v["status"], "Completed");
    assert_eq!(v["distributionId"], DIST);
    assert_eq!(v["paths"], serde_json::json!(["/img/*", "/index.html"]));
    assert_eq!(v["billedPaths"], 2);
    assert_eq!(v["dropped"].as_array().unwrap().len(), 2);
    assert_eq!(v["callerReferenceSource"], "idempotencyKey");
    let id = v["invalidationId"].as_str().unwrap();

    let c = sim.counters();
    assert_eq!(c.invalidations_created, 1);
    assert_eq!(c.paths_billed(DIST), 2);
    assert!(c.ok(Operation::GetInvalidation) >= 1);
    let records = sim.invalidations(DIST);
    assert_eq!(records[0].id, id);
    assert_eq!(records[0].paths, ["/img/*", "/index.html"]);
    assert_eq!(
        records[0].caller_reference,
        v["callerReference"].as_str().unwrap()
    );

    // CI logs: one line per state change, no terminal escapes.
    assert!(
        run.stderr.contains(
            "submitting 2 path(s) to distribution E2EXAMPLE, 2 duplicate or covered path(s) dropped"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("invalidation {id} InProgress (2 path(s))")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("invalidation {id} Completed after")),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains('\x1b'),
        "no escapes off a terminal: {}",
        run.stderr
    );
}

#[tokio::test]
async fn without_wait_exits_once_submitted_with_text_output() {
    let sim = one_second_sim().await;
    let run = cmd(&[
        "invalidate",
        "--distribution-id",
        DIST,
        "--path",
        "/index.html",
    ])
    .at(&sim)
    .run()
    .await;
    run.expect(0);
    assert!(
        run.stdout.contains("Status:           InProgress\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Paths (1):        /index.html\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.starts_with("Invalidation:     I"),
        "{}",
        run.stdout
    );
    let c = sim.counters();
    assert_eq!(c.invalidations_created, 1);
    assert_eq!(
        c.calls_total(Operation::GetInvalidation),
        0,
        "no polling without --wait"
    );
    // Without a key, the user is told that a retry creates a new invalidation.
    assert!(
        run.stderr.contains("note: no --idempotency-key"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn aws_endpoint_url_cloudfront_is_honoured_without_the_flag() {
    let sim = one_second_sim().await;
    let run = cmd(&[
        "invalidate",
        "--distribution-id",
        DIST,
        "--path",
        "/a",
        "-o",
        "json",
    ])
    .env("AWS_ENDPOINT_URL_CLOUDFRONT", &sim.endpoint_url())
    .run()
    .await;
    run.expect(0);
    assert_eq!(run.json()["outcome"], "submitted");
    assert_eq!(sim.counters().invalidations_created, 1);
}

// ---- idempotency ----

#[tokio::test]
async fn a_retried_step_with_the_same_key_creates_and_bills_one_invalidation() {
    let sim = one_second_sim().await;
    let args = |key: &str, paths: &[&str]| {
        let mut a = vec![
            "invalidate",
            "--distribution-id",
            DIST,
            "--wait",
            "-o",
            "json",
        ];
        a.extend(["--idempotency-key", key]);
        for p in paths {
            a.extend(["--path", p]);
        }
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run_with = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        cmd(&refs).fast().at(&sim).run()
    };
    let first = run_with(args("run-41", &["/index.html", "/app.js"])).await;
    first.expect(0);
    // The retry lists the same paths in another order, with a duplicate.
    let retry = run_with(args("run-41", &["app.js", "/index.html", "/app.js"])).await;
    retry.expect(0);
    let (a, b) = (first.json(), retry.json());
    assert_eq!(a["invalidationId"], b["invalidationId"]);
    assert_eq!(a["callerReference"], b["callerReference"]);
    assert_eq!(b["status"], "Completed");
    assert!(
        retry
            .stderr
            .contains("CloudFront returned the invalidation created at"),
        "{}",
        retry.stderr
    );
    let c = sim.counters();
    assert_eq!(c.invalidations_created, 1, "the retry created nothing");
    assert_eq!(c.distribution(DIST).idempotent_replays, 1);
    assert_eq!(c.paths_billed(DIST), 2, "billed once");

    // The next pipeline run (a new key) invalidates again.
    let next = run_with(args("run-42", &["/index.html", "/app.js"])).await;
    next.expect(0);
    assert_ne!(next.json()["invalidationId"], a["invalidationId"]);
    assert_eq!(sim.counters().invalidations_created, 2);
    assert_eq!(sim.counters().paths_billed(DIST), 4);
}

#[tokio::test]
async fn without_a_key_every_run_creates_a_new_invalidation() {
    let sim = one_second_sim().await;
    for _ in 0..2 {
        cmd(&[
            "invalidate",
            "--distribution-id",
            DIST,
            "--path",
            "/index.html",
        ])
        .at(&sim)
        .run()
        .await
        .expect(0);
    }
    let records = sim.invalidations(DIST);
    assert_eq!(records.len(), 2);
    assert_ne!(records[0].caller_reference, records[1].caller_reference);
    assert!(records[0].caller_reference.starts_with("cfinv-run-"));
}

#[tokio::test]
async fn a_caller_reference_reused_with_other_paths_fails_with_exit_1() {
    let sim = one_second_sim().await;
    let base = [
        "invalidate",
        "--distribution-id",
        DIST,
        "--caller-reference",
        "release-7",
    ];
    let mut first = base.to_vec();
    first.extend(["--path", "/a"]);
    cmd(&first).at(&sim).run().await.expect(0);
    let mut second = base.to_vec();
    second.extend(["--path", "/b", "-o", "json"]);
    let run = cmd(&second).at(&sim).run().await;
    run.expect(1);
    let v = run.json();
    assert_eq!(v["outcome"], "failed");
    assert_eq!(v["error"]["reason"], "CallerReferenceConflict");
    assert_eq!(v["error"]["code"], "InvalidationBatchAlreadyExists");
    assert!(
        run.stderr.contains("release-7 was already used"),
        "{}",
        run.stderr
    );
}

// ---- the in-progress quota ----

/// Submits 15 wildcard paths (the whole wildcard quota) with the CLI, without waiting.
async fn fill_wildcard_slots(sim: &SimulatorHandle) {
    let wildcards: Vec<String> = (1..=15).map(|i| format!("/w{i}/*")).collect();
    let mut args = vec!["invalidate", "--distribution-id", DIST, "--path"];
    args.extend(wildcards.iter().map(String::as_str));
    cmd(&args).at(sim).run().await.expect(0);
    let d = sim.counters().distribution(DIST);
    assert_eq!(d.in_progress_wildcard_paths, 15, "the quota is full");
}

#[tokio::test]
async fn a_full_distribution_means_waiting_for_a_slot_not_failing() {
    // Two real seconds to completion.
    let sim = start(
        Simulator::builder()
            .distribution(DIST)
            .completion(Completion::Fixed(Duration::from_secs(120)))
            .time_scale(60.0),
    )
    .await;
    fill_wildcard_slots(&sim).await;
    let run = cmd(&[
        "invalidate",
        "--distribution-id",
        DIST,
        "--path",
        "/*",
        "--wait",
        "--timeout",
        "30s",
        "-o",
        "json",
    ])
    .fast()
    .at(&sim)
    .run()
    .await;
    run.expect(0);
    assert_eq!(run.json()["status"], "Completed");
    assert!(
        run.stderr.contains(
            "has too many invalidations in progress (CloudFront allows 15 wildcard paths"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("waiting for a slot"), "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("waiting for a slot").count(),
        1,
        "said once, not per attempt: {}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("still waiting for an in-progress slot on E2EXAMPLE"),
        "periodic line: {}",
        run.stderr
    );
    let c = sim.counters();
    assert!(
        c.calls(
            Operation::CreateInvalidation,
            "TooManyInvalidationsInProgress"
        ) >= 1
    );
    assert_eq!(c.invalidations_created, 2);
    assert_eq!(c.distribution(DIST).peak_in_progress_wildcard_paths, 15);
}

#[tokio::test]
async fn waiting_for_a_slot_ends_at_the_timeout_with_exit_4() {
    let sim = start(
        Simulator::builder()
            .distribution(DIST)
            .completion(Completion::Fixed(Duration::from_secs(3600))),
    )
    .await;
    fill_wildcard_slots(&sim).await;
    let run = cmd(&[
        "invalidate",
        "--distribution-id",
        DIST,
        "--path",
        "/*",
        "--timeout",
        "1s",
        "-o",
        "json",
    ])
    .fast()
    .at(&sim)
    .run()
    .await;
    run.expect(4);
    let v = run.json();
    assert_eq!(v["outcome"], "timedOut");
    assert_eq!(v["error"]["reason"], "Timeout");
    assert_eq!(v["error"]["code"], "TooManyInvalidationsInProgress");
    assert!(v.get("invalidationId").is_none(), "nothing was submitted");
    assert!(
        run.stderr.contains("waiting for an in-progress slot"),
        "{}",
        run.stderr
    );
    assert_eq!(sim.counters().invalidations_created, 1, "only the filler");
    // Wide enough for a loaded 2-core machine: the point is that it ends, not how fast.
    assert!(run.took < Duration::from_secs(60), "{:?}", run.took);
}

// ---- timeouts and failures ----

#[tokio::test]
async fn wait_ends_at_the_timeout_with_exit_4_and_the_invalidation_id() {
    let sim = start(
        Simulator::builder()
            .distribution(DIST)
            .completion(Completion::Fixed(Duration::from_secs(3600))),
    )
    .await;
    let run = cmd(&[
        "invalidate",
        "--distribution-id",
        DIST,
        "--path",
        "/index.html",
        "--wait",
        "--timeout",
        "1500ms",
        "-o",
        "json",
    ])
    .fast()
    .at(&sim)
    .run()
    .await;
    run.expect(4);
    let v = run.json();
    assert_eq!(v["outcome"], "timedOut");
    assert_eq!(v["exitCode"], 4);
    assert_eq!(v["status"], "InProgress");
    let id = v["invalidationId"].as_str().unwrap();
    assert!(
        run.stderr
            .contains(&format!("invalidation {id} is still InProgress")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("still waiting for invalidation"),
        "a periodic line while waiting: {}",
        run.stderr
    );
    assert!(run.took >= Duration::from_millis(1500), "{:?}", run.took);
    // Wide enough for a loaded 2-core machine: the point is that it ends, not how fast.
    assert!(run.took < Duration::from_secs(60), "{:?}", run.took);
    // The schedule's first look waits for the prior's 5th percentile (about 12 s), past this
    // timeout: the one look is the last one, at the deadline.
    assert!(sim.counters().ok(Operation::GetInvalidation) >= 1);
}

#[tokio::test]
async fn a_missing_distribution_fails_with_exit_1_without_retrying() {
    let sim = one_second_sim().await;
    let run = cmd(&[
        "invalidate",
        "--distribution-id",
        "E9MISSING",
        "--path",
        "/a",
        "--wait",
        "-o",
        "json",
    ])
    .fast()
    .at(&sim)
    .run()
    .await;
    run.expect(1);
    let v = run.json();
    assert_eq!(v["outcome"], "failed");
    assert_eq!(v["error"]["reason"], "DistributionNotFound");
    assert_eq!(v["error"]["code"], "NoSuchDistribution");
    assert!(
        run.stderr.contains("distribution E9MISSING does not exist"),
        "{}",
        run.stderr
    );
    assert_eq!(
        sim.counters().calls_total(Operation::CreateInvalidation),
        1,
        "a failure is not retried"
    );
}

#[tokio::test]
async fn access_denied_fails_with_exit_1() {
    let sim = start(
        Simulator::builder()
            .distribution(DIST)
            .deny_access(DIST)
            .completion(Completion::Fixed(Duration::from_secs(60))),
    )
    .await;
    let run = cmd(&["invalidate", "--distribution-id", DIST, "--path", "/a"])
        .fast()
        .at(&sim)
        .run()
        .await;
    run.expect(1);
    assert!(
        run.stdout.is_empty(),
        "text output shows nothing without an invalidation"
    );
    assert!(
        run.stderr
            .contains("error: these credentials may not invalidate distribution E2EXAMPLE"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("AccessDenied"), "{}", run.stderr);
}

#[tokio::test]
async fn transient_errors_are_retried_without_paying_twice() {
    let sim = one_second_sim().await;
    sim.set_faults(
        FaultConfig::none()
            .for_operations([Operation::CreateInvalidation, Operation::GetInvalidation])
            .throttling(0.5)
            .service_unavailable(0.2)
            .seed(7),
    )
    .unwrap();
    let run = cmd(&[
        "invalidate",
        "--distribution-id",
        DIST,
        "--path",
        "/a",
        "--wait",
        "--idempotency-key",
        "k",
        "--timeout",
        "30s",
        "-o",
        "json",
    ])
    .fast()
    .at(&sim)
    .run()
    .await;
    run.expect(0);
    let c = sim.counters();
    let faults = c.calls(Operation::CreateInvalidation, "Throttling")
        + c.calls(Operation::CreateInvalidation, "ServiceUnavailable")
        + c.calls(Operation::GetInvalidation, "Throttling")
        + c.calls(Operation::GetInvalidation, "ServiceUnavailable");
    assert!(faults >= 1, "the seed injects at least one fault: {c:?}");
    assert!(
        run.stderr.contains("failed, retrying in") || run.stderr.contains("will retry"),
        "{}",
        run.stderr
    );
    assert_eq!(c.invalidations_created, 1);
}

// ---- invalid input and usage errors ----

#[tokio::test]
async fn invalid_input_exits_3_and_sends_nothing() {
    let sim = one_second_sim().await;
    let cases: &[(&[&str], &str)] = &[
        (
            &["--distribution-id", DIST, "--path", "/a*b"],
            "\"*\" is allowed only as the last character",
        ),
        (
            &[
                "--distribution-id",
                DIST,
                "--path",
                "/assets/app.*.js",
                "/ok",
            ],
            "--path \"/assets/app.*.js\"",
        ),
        (
            &["--distribution-id", "e2example", "--path", "/a"],
            "distribution id \"e2example\" is not valid",
        ),
        (
            &[
                "--distribution-id",
                DIST,
                "--path",
                "/a",
                "--idempotency-key",
                "",
            ],
            "--idempotency-key is empty",
        ),
        (
            &["-f", "/nonexistent/manifest.yaml"],
            "cannot read manifest",
        ),
    ];
    for (args, expected) in cases {
        let mut argv = vec!["invalidate"];
        argv.extend_from_slice(args);
        argv.extend(["-o", "json"]);
        let run = cmd(&argv).at(&sim).run().await;
        run.expect(3);
        let v = run.json();
        assert_eq!(v["outcome"], "invalidInput");
        assert_eq!(v["error"]["reason"], "InvalidInput");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{message:?} should contain {expected:?}"
        );
        assert!(run.stderr.contains(expected), "{}", run.stderr);
    }
    let c = sim.counters();
    assert_eq!(total_calls(&c), 0, "no call reached the simulator: {c:?}");
}

#[tokio::test]
async fn usage_errors_exit_2() {
    for argv in [
        &["invalidate"][..],
        &["invalidate", "--path", "/a"],
        &[
            "invalidate",
            "--distribution-id",
            DIST,
            "--path",
            "/a",
            "--output",
            "yaml",
        ],
        &["invalidate", "--distribution-id", DIST, "-f", FIXTURE],
        &["list"],
        &["get", "--distribution-id", DIST],
    ] {
        let run = cmd(argv).run().await;
        run.expect(2);
        assert!(run.stdout.is_empty());
        assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    }
}

// ---- dry run ----

#[tokio::test]
async fn dry_run_prints_the_plan_and_calls_nothing() {
    let sim = one_second_sim().await;
    let run = cmd(&[
        "invalidate",
        "--distribution-id",
        DIST,
        "--path",
        "/index.html",
        "index.html",
        "/img/*",
        "/img/logo.png",
        "/my file.txt",
        "--dry-run",
    ])
    .at(&sim)
    .without_credentials()
    .run()
    .await;
    run.expect(0);
    let out = &run.stdout;
    assert!(
        out.starts_with("Dry run: nothing was sent to CloudFront.\n"),
        "{out}"
    );
    assert!(out.contains("Paths (3):        /img/*\n                  /index.html\n                  /my%20file.txt\n"), "{out}");
    assert!(
        out.contains("index.html (duplicate; normalized /index.html)"),
        "{out}"
    );
    assert!(out.contains("/img/logo.png (covered by /img/*)"), "{out}");
    assert!(
        out.contains("Billed paths:     3 (1 wildcard, 2 object)"),
        "{out}"
    );
    assert!(out.contains("USD 0.015"), "{out}");
    assert!(
        out.contains("1,000 free paths"),
        "the free-tier assumption is stated: {out}"
    );
    assert_eq!(total_calls(&sim.counters()), 0);

    let run = cmd(&[
        "invalidate",
        "--distribution-id",
        DIST,
        "--path",
        "/a",
        "/b",
        "/c",
        "--dry-run",
        "--paths-this-month",
        "999",
        "--idempotency-key",
        "7",
        "-o",
        "json",
    ])
    .without_credentials()
    .run()
    .await;
    run.expect(0);
    let v = run.json();
    assert_eq!(v["outcome"], "dryRun");
    assert_eq!(v["billedPaths"], 3);
    assert_eq!(v["cost"]["chargedPaths"], 2);
    assert_eq!(v["cost"]["usd"], 0.01);
    assert_eq!(v["cost"]["pathsThisMonth"], 999);
    assert!(v["callerReference"].as_str().unwrap().starts_with("cfinv-"));
    assert_eq!(total_calls(&sim.counters()), 0);
}

// ---- manifests ----

#[tokio::test]
async fn a_manifest_works_without_a_cluster() {
    let sim = start(
        Simulator::builder()
            .distribution("E2MANIFEST")
            .completion(Completion::Fixed(Duration::from_secs(60)))
            .time_scale(60.0),
    )
    .await;
    let run = cmd(&["invalidate", "-f", FIXTURE, "--wait", "-o", "json"])
        .fast()
        .at(&sim)
        .run()
        .await;
    run.expect(0);
    let v = run.json();
    assert_eq!(v["distributionId"], "E2MANIFEST");
    assert_eq!(v["status"], "Completed");
    assert_eq!(v["billedPaths"], 3);
    let records = sim.invalidations("E2MANIFEST");
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].paths,
        ["/index.html", "/robots.txt", "/static/*"]
    );

    // From stdin, with a caller reference in the manifest: sent as written, and a second run
    // returns the same invalidation.
    let text = std::fs::read_to_string(FIXTURE).unwrap().replace(
        "  timeoutSeconds: 120",
        "  timeoutSeconds: 120\n  callerReference: release-2024-05-01",
    );
    for _ in 0..2 {
        let run = cmd(&["invalidate", "-f", "-", "-o", "json"])
            .stdin(&text)
            .at(&sim)
            .run()
            .await;
        run.expect(0);
        let v = run.json();
        assert_eq!(v["callerReference"], "release-2024-05-01");
        assert_eq!(v["callerReferenceSource"], "manifest");
    }
    assert_eq!(sim.counters().invalidations_created, 2);

    // A manifest the API server would reject is rejected here too.
    let bad = text.replace("timeoutSeconds: 120", "timeoutSeconds: 5");
    let run = cmd(&["invalidate", "-f", "-"])
        .stdin(&bad)
        .at(&sim)
        .run()
        .await;
    run.expect(3);
    assert!(
        run.stderr
            .contains("spec.timeoutSeconds must be between 60 and 3600"),
        "{}",
        run.stderr
    );
}

// ---- list and get ----

#[tokio::test]
async fn list_pages_through_recent_invalidations_and_get_shows_one() {
    let sim = one_second_sim().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let path = format!("/page-{i}.html");
        let run = cmd(&[
            "invalidate",
            "--distribution-id",
            DIST,
            "--path",
            &path,
            "-o",
            "json",
        ])
        .at(&sim)
        .run()
        .await;
        run.expect(0);
        ids.push(run.json()["invalidationId"].as_str().unwrap().to_owned());
    }
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    sim.reset_counters();

    let run = cmd(&[
        "list",
        "--distribution-id",
        DIST,
        "--max-items",
        "3",
        "--page-size",
        "2",
        "-o",
        "json",
    ])
    .at(&sim)
    .run()
    .await;
    run.expect(0);
    let v = run.json();
    let listed: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, newest_first[..3]);
    assert_eq!(v["truncated"], true);
    assert_eq!(v["items"][0]["status"], "InProgress");
    assert!(v["items"][0]["createTime"].is_string());
    assert_eq!(
        sim.counters().calls_total(Operation::ListInvalidations),
        2,
        "two pages of two"
    );

    let run = cmd(&["list", "--distribution-id", DIST, "--page-size", "2"])
        .at(&sim)
        .run()
        .await;
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", run.stdout);
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATUS") && lines[0].contains("CREATED")
    );
    for (line, id) in lines[1..].iter().zip(&newest_first) {
        assert!(line.starts_with(id), "{line}");
    }

    let run = cmd(&[
        "get",
        "--distribution-id",
        DIST,
        "--id",
        &ids[2],
        "-o",
        "json",
    ])
    .at(&sim)
    .run()
    .await;
    run.expect(0);
    let v = run.json();
    assert_eq!(v["invalidationId"], ids[2].as_str());
    assert_eq!(v["paths"], serde_json::json!(["/page-2.html"]));
    assert!(
        v["callerReference"]
            .as_str()
            .unwrap()
            .starts_with("cfinv-run-")
    );

    let run = cmd(&["get", "--distribution-id", DIST, "--id", &ids[2]])
        .at(&sim)
        .run()
        .await;
    run.expect(0);
    assert!(
        run.stdout
            .contains(&format!("Invalidation:     {}\n", ids[2])),
        "{}",
        run.stdout
    );

    let run = cmd(&[
        "get",
        "--distribution-id",
        DIST,
        "--id",
        "INOSUCHTHING00",
        "-o",
        "json",
    ])
    .at(&sim)
    .run()
    .await;
    run.expect(1);
    assert_eq!(run.json()["error"]["reason"], "InvalidationNotFound");

    let run = cmd(&["list", "--distribution-id", "E9MISSING"])
        .at(&sim)
        .run()
        .await;
    run.expect(1);
    assert!(
        run.stderr.contains("distribution E9MISSING does not exist"),
        "{}",
        run.stderr
    );

    let run = cmd(&["list", "--distribution-id", "bad-id"])
        .at(&sim)
        .run()
        .await;
    run.expect(3);
}

/// `list` and `get` for a distribution tenant: the tenant operations only, the tenant's own
/// invalidations only, the tenant named in the output; unknown and malformed tenant ids.
#[tokio::test]
async fn list_and_get_work_for_a_distribution_tenant() {
    const TENANT: &str = "dt_2yMvQgam3QkJo2z54FDl91dk1AB";
    let sim = start(
        Simulator::builder()
            .distribution(DIST)
            .tenant(TENANT, DIST)
            .completion(Completion::Fixed(Duration::from_secs(60)))
            .time_scale(60.0),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let path = format!("/tenant-{i}.html");
        let run = cmd(&[
            "invalidate",
            "--distribution-tenant-id",
            TENANT,
            "--path",
            &path,
            "-o",
            "json",
        ])
        .at(&sim)
        .run()
        .await;
        run.expect(0);
        ids.push(run.json()["invalidationId"].as_str().unwrap().to_owned());
    }
    // The distribution's own invalidation is not the tenant's.
    let own = cmd(&[
        "invalidate",
        "--distribution-id",
        DIST,
        "--path",
        "/own.html",
        "-o",
        "json",
    ])
    .at(&sim)
    .run()
    .await;
    own.expect(0);
    let own_id = own.json()["invalidationId"].as_str().unwrap().to_owned();
    sim.reset_counters();

    let run = cmd(&[
        "list",
        "--distribution-tenant-id",
        TENANT,
        "--page-size",
        "2",
        "-o",
        "json",
    ])
    .at(&sim)
    .run()
    .await;
    run.expect(0);
    let v = run.json();
    let listed: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first, "the tenant's three, newest first");
    assert_eq!(v["distributionTenantId"], TENANT);
    assert!(v.get("distributionId").is_none(), "{v}");
    assert_eq!(v["truncated"], false);
    let c = sim.counters();
    assert_eq!(
        c.ok(Operation::ListInvalidationsForDistributionTenant),
        2,
        "two pages of two"
    );
    assert_eq!(total_calls(&c), 2, "nothing but the tenant List: {c:#?}");

    sim.reset_counters();
    let run = cmd(&["get", "--distribution-tenant-id", TENANT, "--id", &ids[1]])
        .at(&sim)
        .run()
        .await;
    run.expect(0);
    assert!(
        run.stdout
            .contains(&format!("Invalidation:     {}\n", ids[1]))
            && run
                .stdout
                .contains(&format!("Tenant:           {TENANT}\n"))
            && run.stdout.contains("/tenant-1.html")
            && !run.stdout.contains("Distribution:"),
        "{}",
        run.stdout
    );
    let c = sim.counters();
    assert_eq!(c.ok(Operation::GetInvalidationForDistributionTenant), 1);
    assert_eq!(total_calls(&c), 1, "{c:#?}");

    // The distribution's invalidation, asked through the tenant: not the tenant's.
    let run = cmd(&[
        "get",
        "--distribution-tenant-id",
        TENANT,
        "--id",
        &own_id,
        "-o",
        "json",
    ])
    .at(&sim)
    .run()
    .await;
    run.expect(1);
    assert_eq!(run.json()["error"]["reason"], "InvalidationNotFound");

    // An unknown tenant: exit 1 after one call, naming the tenant.
    sim.reset_counters();
    let run = cmd(&[
        "list",
        "--distribution-tenant-id",
        "dt_0000000000000000000000000",
        "-o",
        "json",
    ])
    .at(&sim)
    .run()
    .await;
    run.expect(1);
    assert_eq!(run.json()["error"]["reason"], "DistributionTenantNotFound");
    assert!(
        run.stderr
            .contains("distribution tenant dt_0000000000000000000000000 does not exist"),
        "{}",
        run.stderr
    );
    assert_eq!(
        sim.counters().calls(
            Operation::ListInvalidationsForDistributionTenant,
            "EntityNotFound"
        ),
        1
    );
    assert_eq!(total_calls(&sim.counters()), 1);

    // A malformed tenant id: exit 3, no call; both ids or neither: clap's usage error.
    sim.reset_counters();
    for args in [
        &["list", "--distribution-tenant-id", "tenant-1"][..],
        &["get", "--distribution-tenant-id", "dt_", "--id", "I1"][..],
    ] {
        cmd(args).at(&sim).run().await.expect(3);
    }
    for args in [
        &[
            "list",
            "--distribution-id",
            DIST,
            "--distribution-tenant-id",
            TENANT,
        ][..],
        &["get", "--id", "I1"][..],
    ] {
        cmd(args).at(&sim).run().await.expect(2);
    }
    assert_eq!(total_calls(&sim.counters()), 0);
}

#[tokio::test]
async fn list_times_out_with_exit_4_when_cloudfront_keeps_failing() {
    let sim = one_second_sim().await;
    sim.set_faults(FaultConfig::none().service_unavailable(1.0))
        .unwrap();
    let run = cmd(&[
        "list",
        "--distribution-id",
        DIST,
        "--timeout",
        "1s",
        "-o",
        "json",
    ])
    .at(&sim)
    .run()
    .await;
    run.expect(4);
    let v = run.json();
    assert_eq!(v["error"]["reason"], "Timeout");
    assert_eq!(v["error"]["code"], "ServiceUnavailable");
    assert!(
        sim.counters()
            .calls(Operation::ListInvalidations, "ServiceUnavailable")
            >= 2
    );
}

#[tokio::test]
async fn missing_credentials_fail_fast_with_exit_1() {
    let sim = one_second_sim().await;
    let run = cmd(&[
        "invalidate",
        "--distribution-id",
        DIST,
        "--path",
        "/a",
        "--wait",
        "-o",
        "json",
    ])
    .without_credentials()
    .at(&sim)
    .run()
    .await;
    run.expect(1);
    let v = run.json();
    assert_eq!(v["outcome"], "failed");
    assert_eq!(v["error"]["reason"], "NoCredentials");
    assert!(
        run.stderr.contains("no AWS credentials found"),
        "{}",
        run.stderr
    );
    // Wide enough for a loaded 2-core machine: it fails fast rather than hanging.
    assert!(run.took < Duration::from_secs(60), "{:?}", run.took);
    assert_eq!(total_calls(&sim.counters()), 0);

    let run = cmd(&["list", "--distribution-id", DIST])
        .without_credentials()
        .at(&sim)
        .run()
        .await;
    run.expect(1);
    assert!(
        run.stderr.contains("no AWS credentials found"),
        "{}",
        run.stderr
    );
}
