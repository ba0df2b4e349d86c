//! `invalidate` from flags and manifests to plans, reports and exit codes.

use std::time::Duration;

use super::plan::Plan;
use super::*;
use crate::InputError;
use clap::Parser;

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    args: InvalidateArgs,
}

fn parse(argv: &[&str]) -> Result<InvalidateArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("invalidate").chain(argv.iter().copied())).map(|c| c.args)
}

fn plan(argv: &[&str]) -> Result<Plan, InputError> {
    Plan::from_args(&parse(argv).expect("valid usage"))
}

#[test]
fn paths_repeat_or_take_several_values() {
    let a = parse(&["--distribution-id", "E2", "--path", "/a", "--path", "/b"]).unwrap();
    assert_eq!(a.paths, ["/a", "/b"]);
    let a = parse(&[
        "--distribution-id",
        "E2",
        "--path",
        "/a",
        "/b",
        "--paths",
        "/c",
    ])
    .unwrap();
    assert_eq!(a.paths, ["/a", "/b", "/c"]);
}

#[test]
fn usage_errors_are_clap_errors() {
    for argv in [
        &["--path", "/a"][..],
        &["--distribution-id", "E2"],
        &["--distribution-id", "E2", "-f", "m.yaml"],
        &["-f", "m.yaml", "--path", "/a"],
        &[
            "--distribution-id",
            "E2",
            "--path",
            "/a",
            "--caller-reference",
            "r",
            "--idempotency-key",
            "k",
        ],
        &[
            "--distribution-id",
            "E2",
            "--path",
            "/a",
            "--paths-this-month",
            "3",
        ],
        &[
            "--distribution-id",
            "E2",
            "--path",
            "/a",
            "--timeout",
            "soon",
        ],
    ] {
        let err = parse(argv).expect_err(&format!("{argv:?}"));
        assert_eq!(err.exit_code(), 2, "{argv:?}: {err}");
    }
}

#[test]
fn plan_sorts_paths_and_hashes_the_key() {
    let p = plan(&[
        "--distribution-id",
        "E2EXAMPLE",
        "--path",
        "/z",
        "a",
        "/img/*",
        "/img/x",
        "--idempotency-key",
        "42",
    ])
    .unwrap();
    assert_eq!(p.normalized.paths, ["/a", "/img/*", "/z"]);
    assert_eq!(p.normalized.dropped.len(), 1);
    assert_eq!(p.reference_source, Source::IdempotencyKey);
    let same = plan(&[
        "--distribution-id",
        "E2EXAMPLE",
        "--path",
        "/img/*",
        "/a",
        "z",
        "--idempotency-key",
        "42",
    ])
    .unwrap();
    assert_eq!(p.caller_reference, same.caller_reference);
    assert_eq!(p.timeout, Duration::from_secs(900));
    assert!(!p.wait);
}

#[test]
fn plan_reference_sources() {
    let p = plan(&["--distribution-id", "E2", "--path", "/a"]).unwrap();
    assert_eq!(p.reference_source, Source::PerRun);
    assert!(p.caller_reference.starts_with("cfinv-run-"));
    let p = plan(&[
        "--distribution-id",
        "E2",
        "--path",
        "/a",
        "--caller-reference",
        "r1",
    ])
    .unwrap();
    assert_eq!(p.reference_source, Source::Flag);
    assert_eq!(p.caller_reference, "r1");
}

#[test]
fn plan_rejects_bad_input() {
    let long = "r".repeat(129);
    let cases: [(&[&str], &str); 6] = [
        (
            &["--distribution-id", "E2", "--path", "/a*b"],
            "--path \"/a*b\": \"*\" is allowed only as the last character",
        ),
        (
            &["--distribution-id", "E2", "--path", "/ok", "--path", ""],
            "--path \"\": a path must not be empty",
        ),
        (
            &["--distribution-id", "e2", "--path", "/a"],
            "distribution id \"e2\" is not valid",
        ),
        (
            &[
                "--distribution-id",
                "E2",
                "--path",
                "/a",
                "--caller-reference",
                &long,
            ],
            "--caller-reference: a caller reference may be at most 128",
        ),
        (
            &[
                "--distribution-id",
                "E2",
                "--path",
                "/a",
                "--idempotency-key",
                "",
            ],
            "--idempotency-key is empty",
        ),
        (
            &["--distribution-id", "E2", "--path", "/a", "--timeout", "0s"],
            "--timeout must be more than zero",
        ),
    ];
    for (argv, expected) in cases {
        let err = plan(argv).expect_err(expected).to_string();
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
    }
}

#[test]
fn manifest_plan() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    std::fs::write(
        &file,
        "apiVersion: cloudfront.invalidation.io/v1alpha1\nkind: CloudFrontInvalidation\n\
             metadata:\n  name: x\nspec:\n  distributionId: E2EXAMPLE\n  callerReference: rel-1\n  \
             timeoutSeconds: 120\n  paths: [\"/b\", \"/a*b\"]\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let err = plan(&["-f", f]).unwrap_err().to_string();
    assert!(err.starts_with("spec.paths[1]:"), "{err}");

    std::fs::write(
        &file,
        "apiVersion: cloudfront.invalidation.io/v1alpha1\nkind: CloudFrontInvalidation\n\
             metadata:\n  name: x\nspec:\n  distributionId: E2EXAMPLE\n  callerReference: rel-1\n  \
             timeoutSeconds: 120\n  paths: [\"/b\", \"a\"]\n",
    )
    .unwrap();
    let p = plan(&["-f", f, "--wait"]).unwrap();
    assert_eq!(p.distribution_id, "E2EXAMPLE");
    assert_eq!(p.normalized.paths, ["/a", "/b"]);
    assert_eq!(p.caller_reference, "rel-1");
    assert_eq!(p.reference_source, Source::Manifest);
    assert_eq!(p.timeout, Duration::from_secs(120));
    assert!(p.wait);
    // The flags win over the manifest.
    let p = plan(&["-f", f, "--timeout", "5m", "--caller-reference", "mine"]).unwrap();
    assert_eq!(p.timeout, Duration::from_secs(300));
    assert_eq!(p.caller_reference, "mine");
    assert_eq!(p.reference_source, Source::Flag);
    // A key next to the manifest's reference would be silently ignored: refused.
    let err = plan(&["-f", f, "--idempotency-key", "1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--idempotency-key has no effect"), "{err}");
}
