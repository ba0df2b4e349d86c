//! The Helm chart, deploy/ and examples/: `scripts/chart-check` runs real Helm and kustomize
//! (see the script's header), and a few checks that need no tools run here directly.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

const CHART: &str = "charts/cloudfront-invalidation-operator";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `*.yaml` files of a folder, sorted by name.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn chart_check_script_passes() {
    let script = root().join("scripts/chart-check");
    let out = Command::new(&script)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/chart-check failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let text = fs::read_to_string(root().join(CHART).join("Chart.yaml")).expect("Chart.yaml");
    let chart: serde_json::Value = serde_norway::from_str(&text).expect("Chart.yaml is YAML");
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "{CHART}/Chart.yaml appVersion must equal Cargo.toml's version (then bump the chart's `version`)"
    );
}

#[test]
fn chart_crds_are_a_copy_of_crds() {
    let ours = yaml_files(&root().join("crds"));
    let copies = yaml_files(&root().join(CHART).join("crds"));
    assert!(!ours.is_empty(), "crds/ holds no CRD");
    let names = |files: &[PathBuf]| -> Vec<_> {
        files
            .iter()
            .map(|p| p.file_name().expect("file name").to_owned())
            .collect()
    };
    assert_eq!(
        names(&ours),
        names(&copies),
        "{CHART}/crds/ must hold the same files as crds/: run scripts/chart-check --update"
    );
    for (ours, copy) in ours.iter().zip(&copies) {
        assert!(
            fs::read(ours).expect("CRD") == fs::read(copy).expect("chart CRD"),
            "{} differs from {}: run scripts/chart-check --update",
            copy.display(),
            ours.display()
        );
    }
}

#[test]
fn deploy_crd_is_a_copy_of_crds() {
    let joined: Vec<u8> = yaml_files(&root().join("crds"))
        .iter()
        .map(|p| fs::read(p).expect("CRD"))
        .collect::<Vec<_>>()
        .join(&b"---\n"[..]);
    assert!(
        fs::read(root().join("deploy/crd.yaml")).expect("deploy/crd.yaml") == joined,
        "deploy/crd.yaml must be a copy of crds/: run scripts/chart-check --update"
    );
}
