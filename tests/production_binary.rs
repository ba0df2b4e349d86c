//! What ships: the production binary and image hold the operator and the CLI, nothing else. The
//! simulator, the test environment and the developer commands are other crates, and neither the
//! binary's dependency graph nor the Dockerfile's operator build reaches them.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cloudfront-invalidation-operator");
const PACKAGE: &str = "cloudfront-invalidation-operator";
/// Crates that must never be compiled into the product.
const NOT_SHIPPED: &[&str] = &["cloudfront-sim", "cfinv-testenv", "xtask", "rcgen", "mlua"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Subcommand names as `--help` lists them.
fn subcommands() -> BTreeSet<String> {
    let out = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("running --help");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).expect("utf-8 help");
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn the_binary_has_the_operator_and_the_cli_and_nothing_else() {
    let expected: BTreeSet<String> = ["run", "crd", "invalidate", "list", "get", "wait", "help"]
        .map(String::from)
        .into();
    assert_eq!(subcommands(), expected);
    for gone in ["simulator", "sandbox", "bench"] {
        let out = Command::new(BIN)
            .arg(gone)
            .output()
            .expect("running the binary");
        assert_eq!(out.status.code(), Some(2), "`{gone}` must be a usage error");
    }
}

/// Every package the production binary links (normal and build dependencies, transitively),
/// from Cargo's own resolution of this workspace, for the host it is built on. Unfiltered,
/// `--offline` would need the sources of every platform's dependencies (Android, Windows),
/// which a fresh machine's build never downloaded.
fn shipped_packages() -> BTreeSet<String> {
    let host = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned()))
        .args(["--print", "host-tuple"])
        .output()
        .expect("running rustc --print host-tuple");
    let host = String::from_utf8(host.stdout).expect("utf-8");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", host.trim()])
        .current_dir(root())
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let start = names
        .iter()
        .find(|(_, name)| **name == PACKAGE)
        .map(|(id, _)| *id)
        .expect("the production package");
    let mut seen = BTreeSet::new();
    let mut todo = vec![start];
    while let Some(id) = todo.pop() {
        if !seen.insert(names[id].to_owned()) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let shipped = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if shipped {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    seen
}

#[test]
fn the_binary_depends_on_no_simulator_test_environment_or_dev_tool() {
    let shipped = shipped_packages();
    for crate_name in [
        "cfinv-api",
        "cfinv-cloudfront",
        "cfinv-operator",
        "cfinv-cli",
    ] {
        assert!(
            shipped.contains(crate_name),
            "{crate_name} is part of the product"
        );
    }
    for crate_name in NOT_SHIPPED {
        assert!(
            !shipped.contains(*crate_name),
            "{crate_name} must not be linked into {PACKAGE}"
        );
    }
}

/// `FROM … AS name` stages of the Dockerfile, with their instructions (continuation lines
/// joined).
fn dockerfile_stages() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("reading Dockerfile");
    let joined = text.replace("\\\n", " ");
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    for line in joined.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(from) = line.strip_prefix("FROM ") {
            let name = from
                .split_whitespace()
                .skip_while(|w| !w.eq_ignore_ascii_case("AS"))
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            stages.push((name, Vec::new()));
        } else if let Some((_, instructions)) = stages.last_mut() {
            instructions.push(line.to_owned());
        }
    }
    stages
}

#[test]
fn the_image_builds_only_the_production_package() {
    let stages = dockerfile_stages();
    let stage = |name: &str| {
        stages
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no stage {name:?} in the Dockerfile"))
    };
    // `docker build .` builds the last stage, and only the stages it copies from.
    let (_, final_stage) = stages.last().expect("a stage");
    let sources: Vec<&str> = final_stage
        .iter()
        .filter_map(|i| i.strip_prefix("COPY --from="))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(
        sources,
        ["build"],
        "the operator image copies from the build stage only"
    );
    let builds: Vec<&String> = stage("build")
        .1
        .iter()
        .filter(|i| i.contains("cargo build"))
        .collect();
    assert_eq!(builds.len(), 1);
    let build = builds[0];
    assert!(
        build.contains(&format!("--package {PACKAGE}")),
        "the build stage builds only {PACKAGE}: {build}"
    );
    for wider in [
        "--workspace",
        "--all ",
        "--all-targets",
        "-p cloudfront-sim",
    ] {
        assert!(
            !build.contains(wider),
            "{wider} in the operator build: {build}"
        );
    }
    // The simulator has its own target.
    let (_, sim) = stage("cloudfront-sim");
    assert!(
        sim.iter()
            .any(|i| i.starts_with("ENTRYPOINT [\"/usr/local/bin/cloudfront-sim\"]"))
    );
}
