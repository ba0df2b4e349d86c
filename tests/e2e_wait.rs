//! `wait` end to end: the production binary's `wait` subcommand against a real kube-apiserver,
//! with the real operator and the simulator deciding the outcome, run as a user that may only
//! get/list/watch cloudfrontinvalidations (what charts/cloudfront-invalidation grants its Job).
//! The in-cluster path (the Helm hook Job) is covered by tests/node_e2e.rs.

#[path = "e2e/support.rs"]
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cfinv_testenv::ControlPlaneUser;
use cloudfront_sim::{Completion, Simulator};
use serde_json::json;
use support::*;

const DIST: &str = "E2EWAITDIST01";
const DENIED: &str = "E2EWAITDENIED1";

/// What one `wait` run did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `cloudfront-invalidation-operator wait ARGS` with `kubeconfig` and no other environment.
async fn wait_cmd(env: &Env, user: ControlPlaneUser, args: &[&str]) -> Run {
    let started = Instant::now();
    let out = tokio::process::Command::new(operator_bin())
        .arg("wait")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.dir())
        .env("KUBECONFIG", env.kubeconfig(user))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run the binary");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// The ClusterRole the wait Job of charts/cloudfront-invalidation has (as a Role there).
async fn grant_read_only(env: &Env) {
    env.grant_operator_user(
        "e2e-wait-reader",
        json!([{"apiGroups": ["cloudfront.invalidation.io"], "resources": ["cloudfrontinvalidations"],
                "verbs": ["get", "list", "watch"]}]),
    )
    .await;
}

#[tokio::test]
async fn wait_exits_0_on_completed_1_on_failed_4_on_timeout_with_read_only_access() {
    let env = Env::start().await;
    let ns = env.namespace("wait").await;
    let sim = Simulator::builder()
        .distributions([DIST, DENIED])
        .deny_access(DENIED)
        .completion(Completion::Fixed(Duration::from_secs(3)))
        .start()
        .await
        .expect("simulator");

    // Without any grant, the user `operator` may not read the objects: a clear error, exit 1.
    env.kubectl
        .apply_json(&ns, &manifest("site-a", DIST, &["/index.html"]))
        .await
        .expect_ok("create site-a");
    let forbidden = wait_cmd(
        &env,
        ControlPlaneUser::Operator,
        &["-n", &ns, "site-a", "--timeout", "20s"],
    )
    .await;
    assert_eq!(forbidden.code, 1, "{forbidden:#?}");
    assert!(forbidden.stderr.contains("not allowed"), "{forbidden:#?}");

    grant_read_only(&env).await;
    // Before an operator runs, nothing finishes: the timeout decides (exit 4), and the output
    // says what it was waiting for.
    let timed_out = wait_for("the grant to apply", Duration::from_secs(20), || async {
        let run = wait_cmd(
            &env,
            ControlPlaneUser::Operator,
            &["-n", &ns, "site-a", "--timeout", "2s"],
        )
        .await;
        if run.code == 4 {
            Ok(run)
        } else {
            Err(format!("{run:#?}"))
        }
    })
    .await;
    assert!(timed_out.stderr.contains("timed out"), "{timed_out:#?}");

    let _operator = Operator::start(&env, env.operator("wait", &sim, &ns)).await;
    env.kubectl
        .apply_json(&ns, &manifest("site-b", DIST, &["/app.js"]))
        .await
        .expect_ok("create site-b");
    let both = wait_cmd(
        &env,
        ControlPlaneUser::Operator,
        &["-n", &ns, "site-a", "site-b", "--timeout", "60s"],
    )
    .await;
    assert_eq!(both.code, 0, "{both:#?}");
    let a = env.api(&ns).get("site-a").await.expect("site-a");
    let id = a
        .status
        .as_ref()
        .and_then(|s| s.invalidation_id.clone())
        .expect("invalidation id");
    assert!(
        both.stdout.contains(&format!("{ns}/site-a Completed {id}")),
        "{both:#?}"
    );
    assert!(
        both.stdout.contains(&format!("{ns}/site-b Completed")),
        "{both:#?}"
    );
    // It returned because they completed, not earlier: CloudFront takes 3 s here.
    assert!(both.took >= Duration::from_secs(2), "{both:#?}");

    // A label selector: every matching object.
    let mut labelled = manifest("site-c", DIST, &["/c"]);
    labelled["metadata"]["labels"] = json!({"release": "r1"});
    env.kubectl
        .apply_json(&ns, &labelled)
        .await
        .expect_ok("create site-c");
    let selected = wait_cmd(
        &env,
        ControlPlaneUser::Operator,
        &["-n", &ns, "-l", "release=r1", "--timeout", "60s"],
    )
    .await;
    assert_eq!(selected.code, 0, "{selected:#?}");
    assert!(
        selected.stdout.contains("site-c Completed") && !selected.stdout.contains("site-a"),
        "{selected:#?}"
    );

    // A distribution CloudFront denies: Failed/AccessDenied, exit 1, the reason on stderr.
    env.kubectl
        .apply_json(&ns, &manifest("site-denied", DENIED, &["/x"]))
        .await
        .expect_ok("create site-denied");
    let failed = wait_cmd(
        &env,
        ControlPlaneUser::Operator,
        &["-n", &ns, "site-a", "site-denied", "--timeout", "60s"],
    )
    .await;
    assert_eq!(failed.code, 1, "{failed:#?}");
    assert!(
        failed.stderr.contains("site-denied Failed: AccessDenied"),
        "{failed:#?}"
    );

    // What cannot finish fails at once instead of waiting for the timeout.
    let missing = wait_cmd(
        &env,
        ControlPlaneUser::Operator,
        &["-n", &ns, "no-such-object", "--timeout", "60s"],
    )
    .await;
    assert_eq!(missing.code, 1, "{missing:#?}");
    assert!(
        missing.stderr.contains("not found") && missing.took < Duration::from_secs(30),
        "{missing:#?}"
    );
    let nothing = wait_cmd(
        &env,
        ControlPlaneUser::Operator,
        &["-n", &ns, "-l", "release=none", "--timeout", "60s"],
    )
    .await;
    assert_eq!(nothing.code, 1, "{nothing:#?}");
    assert!(
        nothing.stderr.contains("no CloudFrontInvalidation"),
        "{nothing:#?}"
    );
}

#[tokio::test]
async fn wait_reports_an_object_deleted_while_waiting() {
    let env = Env::start().await;
    let ns = env.namespace("wait-del").await;
    env.kubectl
        .apply_json(&ns, &manifest("doomed", DIST, &["/index.html"]))
        .await
        .expect_ok("create");
    // No operator: the object stays Pending until it is deleted.
    let waiting = {
        let env_dir = env.kubeconfig(ControlPlaneUser::Admin);
        let ns = ns.clone();
        tokio::spawn(async move {
            tokio::process::Command::new(operator_bin())
                .args(["wait", "-n", &ns, "doomed", "--timeout", "60s"])
                .env_clear()
                .env("KUBECONFIG", env_dir)
                .stdin(Stdio::null())
                .output()
                .await
                .expect("run the binary")
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.kubectl
        .run(&["-n", &ns, "delete", "cfinv", "doomed"])
        .await
        .expect_ok("delete");
    let out = waiting.await.expect("join");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("deleted before it finished"),
        "{out:?}"
    );
}
