//! Third-party cross-checks of the CloudFront simulator.
//!
//! 1. The same `aws-sdk-cloudfront` calls against moto's server (a third-party AWS emulator) and
//!    against the simulator: the parsed responses must have the same shape and the error codes
//!    must agree wherever moto models them. Where moto is not CloudFront (immediate `COMPLETED`,
//!    no idempotency, no validation, no pagination, its own id format) the tests pin the
//!    difference with an assert and a comment instead of copying moto.
//! 2. Unmodified boto3 and the AWS CLI against the simulator.
//!
//! The Python tools come from `scripts/python-env` (a venv at target/pyenv with the pinned
//! versions of scripts/requirements-test.txt); `MOTO_SERVER`, `AWS_CLI` and `PYTHON_BIN_DIR`
//! override where they are found. If they cannot be set up these tests FAIL, saying why.

mod sim_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_cloudfront::Client;
use aws_sdk_cloudfront::error::ProvideErrorMetadata;
use aws_sdk_cloudfront::types::{
    DefaultCacheBehavior, DistributionConfig, Invalidation, Origin, Origins, S3OriginConfig,
    ViewerProtocolPolicy,
};
use cloudfront_sim::{Completion, Operation, Simulator, SimulatorHandle};
use sim_support::{batch, client};

const SIM_DIST: &str = "E2CROSSCHECK";

fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The venv's bin directory, set up once per test process.
fn python_bin_dir() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(dir) = std::env::var("PYTHON_BIN_DIR") {
            return Ok(PathBuf::from(dir));
        }
        let script = repo_root().join("scripts/python-env");
        let out = Command::new(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}); it installs moto[server], boto3 and awscli from scripts/requirements-test.txt:\n{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(PathBuf::from(dir))
    })
    .clone()
    .unwrap_or_else(|e| panic!("the Python test tools could not be set up: {e}"))
}

fn tool(env_var: &str, name: &str) -> PathBuf {
    let path = std::env::var(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|_| python_bin_dir().join(name));
    assert!(
        path.exists(),
        "{name} not found at {} (set {env_var} or fix scripts/python-env)",
        path.display()
    );
    path
}

/// moto's server on a free port of 127.0.0.1, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl Moto {
    async fn start() -> Moto {
        let moto_server = tool("MOTO_SERVER", "moto_server");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log =
            std::env::temp_dir().join(format!("moto-crosscheck-{}-{port}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(&moto_server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", moto_server.display()));
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return moto;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto_server exited ({status}) before listening:\n{}",
                    moto.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen within 60 s:\n{}",
                moto.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// moto only has distributions created through its API: create one with the SDK.
    async fn create_distribution(&self, cf: &Client) -> String {
        let origin = Origin::builder()
            .id("origin-1")
            .domain_name("crosscheck-bucket.s3.us-east-1.amazonaws.com")
            .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
            .build()
            .unwrap();
        let config = DistributionConfig::builder()
            .caller_reference("moto-crosscheck")
            .comment("crosscheck")
            .enabled(true)
            .origins(
                Origins::builder()
                    .quantity(1)
                    .items(origin)
                    .build()
                    .unwrap(),
            )
            .default_cache_behavior(
                DefaultCacheBehavior::builder()
                    .target_origin_id("origin-1")
                    .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                    .cache_policy_id("658327ea-f89d-4fab-a63d-7e88639e58f6")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let out = cf
            .create_distribution()
            .distribution_config(config)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("moto CreateDistribution failed: {e:?}\n{}", self.log_text())
            });
        out.distribution().expect("a distribution").id().to_string()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Both backends, each with one distribution and an SDK client without retries.
struct Backends {
    _moto: Moto,
    moto: Client,
    moto_dist: String,
    sim: SimulatorHandle,
    simc: Client,
}

async fn backends() -> Backends {
    let moto = Moto::start().await;
    let moto_client = client(&moto.endpoint, 1);
    let moto_dist = moto.create_distribution(&moto_client).await;
    let sim = Simulator::builder()
        .distribution(SIM_DIST)
        .completion(Completion::Fixed(Duration::from_secs(300)))
        .start()
        .await
        .unwrap();
    let simc = client(&sim.endpoint_url(), 1);
    Backends {
        _moto: moto,
        moto: moto_client,
        moto_dist,
        sim,
        simc,
    }
}

/// What must be equal between two backends' `Invalidation`s: everything but id, time, status.
fn shape(inv: &Invalidation) -> (Vec<String>, i32, String) {
    let batch = inv.invalidation_batch().expect("InvalidationBatch");
    let paths = batch.paths().expect("Paths");
    (
        paths.items().to_vec(),
        paths.quantity(),
        batch.caller_reference().to_string(),
    )
}

fn is_upper_alnum(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

#[tokio::test]
async fn create_get_and_list_parse_to_the_same_shape_on_moto_and_the_simulator() {
    let b = backends().await;
    let paths = ["/index.html", "/assets/*"];
    let mut created = Vec::new();
    for (cf, dist) in [(&b.moto, b.moto_dist.as_str()), (&b.simc, SIM_DIST)] {
        let out = cf
            .create_invalidation()
            .distribution_id(dist)
            .invalidation_batch(batch("crosscheck-1", &paths))
            .send()
            .await
            .unwrap();
        let inv = out.invalidation().expect("Invalidation").clone();
        let location = out.location().expect("Location header");
        assert!(
            location.ends_with(&format!(
                "/2020-05-31/distribution/{dist}/invalidation/{}",
                inv.id()
            )),
            "{location}"
        );
        assert!(is_upper_alnum(inv.id()), "{}", inv.id());
        assert!(inv.create_time().secs() > 1_600_000_000);
        let got = cf
            .get_invalidation()
            .distribution_id(dist)
            .id(inv.id())
            .send()
            .await
            .unwrap();
        let got = got.invalidation().expect("Invalidation");
        assert_eq!(got.id(), inv.id());
        assert_eq!(shape(got), shape(&inv));
        let list = cf
            .list_invalidations()
            .distribution_id(dist)
            .send()
            .await
            .unwrap();
        let list = list.invalidation_list().expect("InvalidationList");
        assert_eq!(list.quantity(), 1);
        assert!(!list.is_truncated());
        assert_eq!(list.items()[0].id(), inv.id());
        assert_eq!(list.next_marker(), None);
        created.push(inv);
    }
    let (moto, sim) = (&created[0], &created[1]);
    assert_eq!(
        shape(moto),
        shape(sim),
        "the same batch comes back from both"
    );

    // Differences from the real service, pinned so that a moto upgrade that changes them shows:
    // - moto marks an invalidation COMPLETED at once, in capitals. CloudFront answers InProgress,
    //   then Completed (the botocore waiter `invalidation_completed` matches "Completed", so it
    //   never succeeds against moto). The simulator follows CloudFront.
    assert_eq!(moto.status(), "COMPLETED");
    assert_eq!(sim.status(), "InProgress");
    // - moto ids are 13 characters starting with any letter; CloudFront's are "I" and 13 more
    //   (the API reference's example: I1JLWSDAP8FU89).
    assert_eq!(moto.id().len(), 13);
    assert_eq!(sim.id().len(), 14);
    assert!(sim.id().starts_with('I'));
    // - moto's Location names the real endpoint; the simulator's names itself, so it can be
    //   followed.
    b.sim.shutdown().await;
}

#[tokio::test]
async fn error_codes_and_statuses_agree_where_moto_models_them() {
    let b = backends().await;
    let mut seen = Vec::new();
    for (cf, dist) in [(&b.moto, b.moto_dist.as_str()), (&b.simc, SIM_DIST)] {
        let mut codes = Vec::new();
        let err = cf
            .get_invalidation()
            .distribution_id(dist)
            .id("INOSUCHINVALID")
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error()
                .is_some_and(|e| e.is_no_such_invalidation()),
            "{err:?}"
        );
        codes.push((
            err.code().map(str::to_string),
            err.raw_response().map(|r| r.status().as_u16()),
        ));
        let err = cf
            .get_invalidation()
            .distribution_id("ENOSUCHDIST")
            .id("I1")
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error()
                .is_some_and(|e| e.is_no_such_distribution()),
            "{err:?}"
        );
        codes.push((
            err.code().map(str::to_string),
            err.raw_response().map(|r| r.status().as_u16()),
        ));
        let err = cf
            .create_invalidation()
            .distribution_id("ENOSUCHDIST")
            .invalidation_batch(batch("r", &["/a"]))
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error()
                .is_some_and(|e| e.is_no_such_distribution()),
            "{err:?}"
        );
        codes.push((
            err.code().map(str::to_string),
            err.raw_response().map(|r| r.status().as_u16()),
        ));
        let err = cf
            .get_distribution()
            .id("ENOSUCHDIST")
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error()
                .is_some_and(|e| e.is_no_such_distribution()),
            "{err:?}"
        );
        codes.push((
            err.code().map(str::to_string),
            err.raw_response().map(|r| r.status().as_u16()),
        ));
        // The error document: <ErrorResponse><Error><Type>Sender</Type><Code>…
        let body = String::from_utf8_lossy(err.raw_response().unwrap().body().bytes().unwrap())
            .to_string();
        assert!(
            body.contains("<Type>Sender</Type>")
                && body.contains("<Code>NoSuchDistribution</Code>"),
            "{body}"
        );
        seen.push(codes);
    }
    assert_eq!(
        seen[0], seen[1],
        "moto and the simulator answer the same codes and statuses"
    );
    assert_eq!(
        seen[1][0],
        (Some("NoSuchInvalidation".to_string()), Some(404))
    );
    assert_eq!(
        seen[1][1],
        (Some("NoSuchDistribution".to_string()), Some(404))
    );

    // moto lists invalidations of a distribution that does not exist (an empty list);
    // CloudFront answers NoSuchDistribution, and so does the simulator.
    assert!(
        b.moto
            .list_invalidations()
            .distribution_id("ENOSUCHDIST")
            .send()
            .await
            .is_ok()
    );
    let err = b
        .simc
        .list_invalidations()
        .distribution_id("ENOSUCHDIST")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_no_such_distribution());
    b.sim.shutdown().await;
}

#[tokio::test]
async fn where_moto_is_not_cloudfront_the_simulator_follows_cloudfront() {
    let b = backends().await;
    let md = b.moto_dist.as_str();

    // Idempotency: the same CallerReference and paths again.
    let ids =
        |out: aws_sdk_cloudfront::operation::create_invalidation::CreateInvalidationOutput| {
            out.invalidation().unwrap().id().to_string()
        };
    let m1 = ids(b
        .moto
        .create_invalidation()
        .distribution_id(md)
        .invalidation_batch(batch("same", &["/a"]))
        .send()
        .await
        .unwrap());
    let m2 = ids(b
        .moto
        .create_invalidation()
        .distribution_id(md)
        .invalidation_batch(batch("same", &["/a"]))
        .send()
        .await
        .unwrap());
    assert_ne!(
        m1, m2,
        "moto creates a second invalidation (and the real service would not)"
    );
    let s1 = ids(b
        .simc
        .create_invalidation()
        .distribution_id(SIM_DIST)
        .invalidation_batch(batch("same", &["/a"]))
        .send()
        .await
        .unwrap());
    let s2 = ids(b
        .simc
        .create_invalidation()
        .distribution_id(SIM_DIST)
        .invalidation_batch(batch("same", &["/a"]))
        .send()
        .await
        .unwrap());
    assert_eq!(
        s1, s2,
        "CloudFront returns the invalidation it already created"
    );

    // The same CallerReference with other paths.
    assert!(
        b.moto
            .create_invalidation()
            .distribution_id(md)
            .invalidation_batch(batch("same", &["/other"]))
            .send()
            .await
            .is_ok()
    );
    let err = b
        .simc
        .create_invalidation()
        .distribution_id(SIM_DIST)
        .invalidation_batch(batch("same", &["/other"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidationBatchAlreadyExists"));

    // Validation: a wildcard that is not last, and a Quantity that does not match the Items.
    assert!(
        b.moto
            .create_invalidation()
            .distribution_id(md)
            .invalidation_batch(batch("v1", &["/app.*.js"]))
            .send()
            .await
            .is_ok()
    );
    let err = b
        .simc
        .create_invalidation()
        .distribution_id(SIM_DIST)
        .invalidation_batch(batch("v1", &["/app.*.js"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidArgument"));
    let skewed = sim_support::batch_with_quantity("v2", &["/a"], 2);
    assert!(
        b.moto
            .create_invalidation()
            .distribution_id(md)
            .invalidation_batch(skewed.clone())
            .send()
            .await
            .is_ok()
    );
    let err = b
        .simc
        .create_invalidation()
        .distribution_id(SIM_DIST)
        .invalidation_batch(skewed)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InconsistentQuantities"));

    // Pagination: moto ignores MaxItems and lists oldest first; CloudFront pages newest first.
    let moto_list = b
        .moto
        .list_invalidations()
        .distribution_id(md)
        .max_items(2)
        .send()
        .await
        .unwrap();
    let moto_list = moto_list.invalidation_list().unwrap();
    assert_eq!(
        (
            moto_list.quantity(),
            moto_list.is_truncated(),
            moto_list.max_items()
        ),
        (5, false, 100)
    );
    assert_eq!(moto_list.items()[0].id(), m1, "oldest first");
    b.simc
        .create_invalidation()
        .distribution_id(SIM_DIST)
        .invalidation_batch(batch("later", &["/b"]))
        .send()
        .await
        .unwrap();
    let sim_list = b
        .simc
        .list_invalidations()
        .distribution_id(SIM_DIST)
        .max_items(1)
        .send()
        .await
        .unwrap();
    let sim_list = sim_list.invalidation_list().unwrap();
    assert_eq!(
        (
            sim_list.quantity(),
            sim_list.is_truncated(),
            sim_list.max_items()
        ),
        (1, true, 1)
    );
    assert_ne!(sim_list.items()[0].id(), s1, "newest first");

    let c = b.sim.counters();
    assert_eq!(c.invalidations_created, 2);
    assert_eq!(c.distribution(SIM_DIST).idempotent_replays, 1);
    b.sim.shutdown().await;
}

#[tokio::test]
async fn get_distribution_parses_to_the_same_shape() {
    let b = backends().await;
    let mut arns = Vec::new();
    for (cf, dist) in [(&b.moto, b.moto_dist.as_str()), (&b.simc, SIM_DIST)] {
        let out = cf.get_distribution().id(dist).send().await.unwrap();
        assert!(out.e_tag().is_some_and(|e| !e.is_empty()), "ETag header");
        let d = out.distribution().expect("Distribution");
        assert_eq!(d.id(), dist);
        assert!(
            d.arn().ends_with(&format!(":distribution/{dist}")),
            "{}",
            d.arn()
        );
        assert!(
            d.domain_name().ends_with(".cloudfront.net"),
            "{}",
            d.domain_name()
        );
        assert_eq!(d.status(), "Deployed");
        arns.push(d.arn().to_string());
        let config = d.distribution_config().expect("DistributionConfig");
        assert!(config.enabled());
        assert_eq!(config.origins().expect("Origins").quantity(), 1);
        assert!(
            !config
                .default_cache_behavior()
                .expect("DefaultCacheBehavior")
                .target_origin_id()
                .is_empty()
        );
    }
    // CloudFront is global: its ARNs have an empty region field, arn:aws:cloudfront::ACCOUNT:…
    // moto leaves that field out (arn:aws:cloudfront:ACCOUNT:…); the simulator keeps it.
    assert!(
        arns[0].starts_with("arn:aws:cloudfront:") && !arns[0].starts_with("arn:aws:cloudfront::"),
        "{}",
        arns[0]
    );
    assert_eq!(
        arns[1],
        format!("arn:aws:cloudfront::123456789012:distribution/{SIM_DIST}")
    );
    b.sim.shutdown().await;
}

/// GetDistributionConfig (the operator's optional CacheTagConfig check): the same shape from
/// moto and the simulator, the ETag of GetDistribution, no CacheTagConfig on either by default
/// (moto 5.2.1 does not know it: pinned); the simulator reports one when it is given one.
#[tokio::test]
async fn get_distribution_config_parses_to_the_same_shape() {
    let b = backends().await;
    for (cf, dist) in [(&b.moto, b.moto_dist.as_str()), (&b.simc, SIM_DIST)] {
        let out = cf.get_distribution_config().id(dist).send().await.unwrap();
        let config = out.distribution_config().expect("DistributionConfig");
        assert!(config.enabled(), "{dist}");
        assert_eq!(config.origins().expect("Origins").quantity(), 1, "{dist}");
        assert_eq!(config.cache_tag_config(), None, "{dist}");
        let etag = cf.get_distribution().id(dist).send().await.unwrap();
        assert_eq!(
            out.e_tag(),
            etag.e_tag(),
            "{dist}: one ETag per configuration"
        );
        assert!(out.e_tag().is_some_and(|e| !e.is_empty()), "{dist}");
    }
    b.sim
        .set_cache_tag_config(SIM_DIST, Some("x-amz-meta-cache-tag"))
        .unwrap();
    let out = b
        .simc
        .get_distribution_config()
        .id(SIM_DIST)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.distribution_config()
            .and_then(|c| c.cache_tag_config())
            .map(|c| c.header_name()),
        Some("x-amz-meta-cache-tag")
    );
    b.sim.shutdown().await;
}

/// Runs a command to completion without blocking the runtime the simulator is served on.
async fn run_json(cmd: &mut tokio::process::Command) -> serde_json::Value {
    let out = cmd
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{cmd:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// An `aws` command against `endpoint`, with test credentials and no user configuration.
fn aws(endpoint: &str, home: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(tool("AWS_CLI", "aws"));
    cmd.args(["--endpoint-url", endpoint, "--output", "json", "cloudfront"])
        .args(args)
        .env("HOME", home)
        .env("AWS_ACCESS_KEY_ID", "AKIDSIMULATORTEST")
        .env("AWS_SECRET_ACCESS_KEY", "simulator-secret")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_PAGER", "")
        .stdin(Stdio::null());
    cmd
}

#[tokio::test]
async fn the_aws_cli_accepts_the_simulator() {
    tool("AWS_CLI", "aws");
    let sim = Simulator::builder()
        .distribution(SIM_DIST)
        .completion(Completion::Fixed(Duration::from_secs(300)))
        .start()
        .await
        .unwrap();
    let endpoint = sim.endpoint_url();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();

    let created = run_json(&mut aws(
        &endpoint,
        home,
        &[
            "create-invalidation",
            "--distribution-id",
            SIM_DIST,
            "--paths",
            "/index.html",
            "/assets/*",
        ],
    ))
    .await;
    let id = created["Invalidation"]["Id"].as_str().unwrap().to_string();
    assert_eq!(created["Invalidation"]["Status"], "InProgress");
    assert_eq!(
        created["Invalidation"]["InvalidationBatch"]["Paths"]["Items"],
        serde_json::json!(["/index.html", "/assets/*"])
    );
    assert!(
        created["Invalidation"]["InvalidationBatch"]["CallerReference"]
            .as_str()
            .unwrap()
            .starts_with("cli-")
    );
    assert_eq!(
        created["Location"],
        format!("{endpoint}/2020-05-31/distribution/{SIM_DIST}/invalidation/{id}")
    );
    let create_time = created["Invalidation"]["CreateTime"].as_str().unwrap();
    assert!(
        create_time.starts_with("20") && create_time.contains('T'),
        "{create_time}"
    );

    let got = run_json(&mut aws(
        &endpoint,
        home,
        &[
            "get-invalidation",
            "--distribution-id",
            SIM_DIST,
            "--id",
            &id,
        ],
    ))
    .await;
    assert_eq!(got["Invalidation"]["Id"], id.as_str());

    // A caller reference of our own, sent twice: one invalidation.
    let fixed =
        r#"{"Paths":{"Quantity":1,"Items":["/robots.txt"]},"CallerReference":"cli-fixed-ref"}"#;
    let a = run_json(&mut aws(
        &endpoint,
        home,
        &[
            "create-invalidation",
            "--distribution-id",
            SIM_DIST,
            "--invalidation-batch",
            fixed,
        ],
    ))
    .await;
    let b = run_json(&mut aws(
        &endpoint,
        home,
        &[
            "create-invalidation",
            "--distribution-id",
            SIM_DIST,
            "--invalidation-batch",
            fixed,
        ],
    ))
    .await;
    assert_eq!(a["Invalidation"]["Id"], b["Invalidation"]["Id"]);

    sim.complete_all_now();
    let list = run_json(&mut aws(
        &endpoint,
        home,
        &["list-invalidations", "--distribution-id", SIM_DIST],
    ))
    .await;
    // The CLI paginates by itself and prints the merged Items (without Quantity).
    assert_eq!(
        list["InvalidationList"]["Items"].as_array().map(Vec::len),
        Some(2),
        "{list}"
    );
    assert!(
        list["InvalidationList"]["Items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["Status"] == "Completed")
    );

    let dist = run_json(&mut aws(
        &endpoint,
        home,
        &["get-distribution", "--id", SIM_DIST],
    ))
    .await;
    assert!(dist["ETag"].as_str().is_some_and(|e| e.starts_with('E')));
    assert_eq!(dist["Distribution"]["Id"], SIM_DIST);

    let out = aws(
        &endpoint,
        home,
        &["get-distribution", "--id", "ENOSUCHDIST"],
    )
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(NoSuchDistribution)"), "{stderr}");

    let c = sim.counters();
    assert_eq!(c.ok(Operation::CreateInvalidation), 3);
    assert_eq!(c.invalidations_created, 2);
    assert_eq!(c.calls(Operation::GetDistribution, "NoSuchDistribution"), 1);
    assert_eq!(
        c.calls(Operation::CreateInvalidation, "MissingAuthenticationToken"),
        0,
        "the CLI signs its requests"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn boto3_accepts_the_simulator_including_its_waiter_paginator_and_exceptions() {
    // 60 simulated seconds at 60x: the waiter (polling every real second) sees Completed soon.
    let sim = Simulator::builder()
        .distribution(SIM_DIST)
        .completion(Completion::Fixed(Duration::from_secs(60)))
        .time_scale(60.0)
        .start()
        .await
        .unwrap();
    let python = tool("PYTHON", "python");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/boto3_against_simulator.py");
    let out = run_json(
        tokio::process::Command::new(python)
            .arg(script)
            .arg(sim.endpoint_url())
            .arg(SIM_DIST)
            .stdin(Stdio::null()),
    )
    .await;

    let id = out["id"].as_str().unwrap();
    assert_eq!(out["create_http_status"], 201);
    assert_eq!(out["status"], "InProgress");
    assert_eq!(out["status_after_wait"], "Completed");
    assert_eq!(out["replay_id"], id);
    assert_eq!(
        out["paths"],
        serde_json::json!(["/index.html", "/assets/*"])
    );
    assert_eq!(out["caller_reference"], "boto3-1");
    assert_eq!(
        out["location"],
        format!(
            "{}/2020-05-31/distribution/{SIM_DIST}/invalidation/{id}",
            sim.endpoint_url()
        )
    );
    assert!(
        out["create_time"].as_str().unwrap().ends_with("+00:00"),
        "{}",
        out["create_time"]
    );
    assert_eq!(out["pages"], 3, "5 invalidations in pages of 2");
    let listed = out["listed_ids"].as_array().unwrap();
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[4], id, "newest first, so the first one is last");
    let errors = &out["errors"];
    assert_eq!(
        errors["get_distribution_unknown"],
        serde_json::json!(["NoSuchDistribution", 404])
    );
    assert_eq!(
        errors["invalid_path"],
        serde_json::json!(["InvalidArgument", 400])
    );
    assert_eq!(
        errors["batch_too_large"],
        serde_json::json!(["BatchTooLarge", 413])
    );
    assert_eq!(
        errors["no_such_invalidation"],
        serde_json::json!(["NoSuchInvalidation", 404])
    );
    assert!(out["etag"].as_str().is_some_and(|e| e.starts_with('E')));
    assert_eq!(out["distribution_status"], "Deployed");

    let c = sim.counters();
    assert_eq!(c.invalidations_created, 5);
    assert_eq!(c.distribution(SIM_DIST).idempotent_replays, 1);
    assert!(c.ok(Operation::GetInvalidation) >= 2, "the waiter polled");
    assert_eq!(c.ok(Operation::ListInvalidations), 3);
    sim.shutdown().await;
}

// ---------- distribution tenants and cache tags ----------

const SIM_TENANT: &str = "dt_2yMvQgam3QkJo2z54FDl91dk1AB";

fn tenant_simulator() -> cloudfront_sim::SimulatorBuilder {
    // Tag-only batches complete after 2 simulated seconds; paths after 300.
    Simulator::builder()
        .distribution(SIM_DIST)
        .tenant(SIM_TENANT, SIM_DIST)
        .completion(Completion::Fixed(Duration::from_secs(300)))
        .tag_completion(Completion::Fixed(Duration::from_secs(2)))
}

#[tokio::test]
async fn boto3_uses_the_tenant_operations_and_tags() {
    let sim = tenant_simulator().start().await.unwrap();
    let python = tool("PYTHON", "python");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/boto3_tenants_and_tags.py");
    let out = run_json(
        tokio::process::Command::new(python)
            .arg(script)
            .arg(sim.endpoint_url())
            .arg(SIM_DIST)
            .arg(SIM_TENANT)
            .stdin(Stdio::null()),
    )
    .await;

    let id = out["id"].as_str().unwrap();
    assert_eq!(out["create_http_status"], 201);
    assert_eq!(out["status"], "InProgress");
    assert_eq!(out["status_after_wait"], "Completed", "the tenant waiter");
    assert_eq!(
        out["replay_id"], id,
        "CallerReference idempotency per tenant"
    );
    assert_eq!(out["paths"], serde_json::json!(["#product:electronics"]));
    assert_eq!(
        out["location"],
        format!(
            "{}/2020-05-31/distribution-tenant/{SIM_TENANT}/invalidation/{id}",
            sim.endpoint_url()
        )
    );
    assert_eq!(out["tenant_listed"], serde_json::json!([id]));
    assert_eq!(
        out["distribution_listed"],
        serde_json::json!([]),
        "a tenant's invalidations are not the distribution's"
    );
    let errors = &out["errors"];
    for key in [
        "create_unknown_tenant",
        "get_unknown_tenant",
        "list_unknown_tenant",
    ] {
        assert_eq!(
            errors[key],
            serde_json::json!(["EntityNotFound", 404]),
            "{key}"
        );
    }
    assert_eq!(
        errors["tenant_invalidation_via_distribution"],
        serde_json::json!(["NoSuchInvalidation", 404])
    );
    assert_eq!(
        errors["malformed_tag"],
        serde_json::json!(["InvalidArgument", 400])
    );
    assert_eq!(errors["modelled_exception"], "EntityNotFound");

    let c = sim.counters();
    assert_eq!(c.invalidations_created, 1);
    assert_eq!(
        c.calls(
            Operation::CreateInvalidationForDistributionTenant,
            "EntityNotFound"
        ),
        2
    );
    assert!(
        c.ok(Operation::GetInvalidationForDistributionTenant) >= 2,
        "the waiter polled"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_aws_cli_uses_the_tenant_operations() {
    tool("AWS_CLI", "aws");
    let sim = tenant_simulator().start().await.unwrap();
    let endpoint = sim.endpoint_url();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();

    let created = run_json(&mut aws(
        &endpoint,
        home,
        &[
            "create-invalidation-for-distribution-tenant",
            "--id",
            SIM_TENANT,
            "--invalidation-batch",
            r##"{"Paths": {"Quantity": 2, "Items": ["/index.html", "#brand:acme"]}, "CallerReference": "cli-tenant-1"}"##,
        ],
    ))
    .await;
    let id = created["Invalidation"]["Id"].as_str().unwrap().to_string();
    assert_eq!(created["Invalidation"]["Status"], "InProgress");
    assert_eq!(
        created["Invalidation"]["InvalidationBatch"]["Paths"]["Items"],
        serde_json::json!(["/index.html", "#brand:acme"])
    );

    let got = run_json(&mut aws(
        &endpoint,
        home,
        &[
            "get-invalidation-for-distribution-tenant",
            "--distribution-tenant-id",
            SIM_TENANT,
            "--id",
            &id,
        ],
    ))
    .await;
    assert_eq!(got["Invalidation"]["Id"], id.as_str());

    let listed = run_json(&mut aws(
        &endpoint,
        home,
        &[
            "list-invalidations-for-distribution-tenant",
            "--id",
            SIM_TENANT,
        ],
    ))
    .await;
    let ids: Vec<&str> = listed["InvalidationList"]["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);

    // An unknown tenant: the CLI exits non-zero and names CloudFront's error code.
    let out = aws(
        &endpoint,
        home,
        &[
            "list-invalidations-for-distribution-tenant",
            "--id",
            "dt_0000000000000000000000000",
        ],
    )
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("EntityNotFound"), "{stderr}");

    let c = sim.counters();
    assert_eq!(c.ok(Operation::CreateInvalidationForDistributionTenant), 1);
    assert_eq!(c.ok(Operation::GetInvalidationForDistributionTenant), 1);
    assert_eq!(c.ok(Operation::ListInvalidationsForDistributionTenant), 1);
    sim.shutdown().await;
}

/// moto 5.2.1 knows neither newer part of the API; pinned so a moto upgrade that learns them is
/// noticed (then compare instead of pinning). The simulator follows CloudFront.
#[tokio::test]
async fn moto_knows_neither_cache_tags_nor_distribution_tenants() {
    let b = backends().await;
    b.sim.add_tenant(SIM_TENANT, SIM_DIST).unwrap();

    // Malformed tag items: moto stores them as paths; the simulator answers InvalidArgument.
    let items = ["#product:electronics", "#a*b", "#a,b"];
    let on_moto = b
        .moto
        .create_invalidation()
        .distribution_id(&b.moto_dist)
        .invalidation_batch(batch("tags-1", &items))
        .send()
        .await
        .expect("moto accepts anything");
    assert_eq!(
        shape(on_moto.invalidation().unwrap()).0,
        items.map(str::to_owned).to_vec()
    );
    let err = b
        .simc
        .create_invalidation()
        .distribution_id(SIM_DIST)
        .invalidation_batch(batch("tags-1", &items))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidArgument"));
    let ok = b
        .simc
        .create_invalidation()
        .distribution_id(SIM_DIST)
        .invalidation_batch(batch("tags-2", &items[..1]))
        .send()
        .await
        .expect("a valid tag");
    assert_eq!(
        shape(ok.invalidation().unwrap()).0,
        vec!["#product:electronics"]
    );

    // The tenant operations: moto has no route (a bare 404 without an error code); the
    // simulator serves them, and answers EntityNotFound for an unknown tenant.
    let err = b
        .moto
        .create_invalidation_for_distribution_tenant()
        .id(SIM_TENANT)
        .invalidation_batch(batch("t-1", &["/a"]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    assert_ne!(err.code(), Some("EntityNotFound"), "{err:?}");
    let err = b
        .moto
        .list_invalidations_for_distribution_tenant()
        .id(SIM_TENANT)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));

    let created = b
        .simc
        .create_invalidation_for_distribution_tenant()
        .id(SIM_TENANT)
        .invalidation_batch(batch("t-1", &["/a", "#brand:acme"]))
        .send()
        .await
        .expect("the simulator serves tenants");
    let inv = created.invalidation().unwrap();
    assert_eq!(inv.status(), "InProgress");
    let got = b
        .simc
        .get_invalidation_for_distribution_tenant()
        .distribution_tenant_id(SIM_TENANT)
        .id(inv.id())
        .send()
        .await
        .unwrap();
    assert_eq!(shape(got.invalidation().unwrap()), shape(inv));
    let err = b
        .simc
        .create_invalidation_for_distribution_tenant()
        .id("dt_0000000000000000000000000")
        .invalidation_batch(batch("t-2", &["/a"]))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_entity_not_found()),
        "{err:?}"
    );
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    b.sim.shutdown().await;
}
