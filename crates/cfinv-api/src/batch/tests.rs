//! The merge rule: union, dedupe and cover across members, and first come pays.

use super::*;

const CHECKED_IN: &str =
    include_str!("../../../../crds/cloudfront.invalidation.io_cloudfrontinvalidationbatches.yaml");

#[test]
fn checked_in_batch_crd_matches_the_rust_types() {
    assert!(
        crd_yaml() == CHECKED_IN,
        "crds/ is out of date: `cargo run -- crd` prints both CRDs (batches, `---`, invalidations): write the first to crds/cloudfront.invalidation.io_cloudfrontinvalidationbatches.yaml"
    );
}

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn forty_identical_members_send_two_items_and_the_oldest_pays() {
    let members: Vec<Vec<String>> = (0..40).map(|_| v(&["/index.html", "/static/*"])).collect();
    let merged = merge(&members).unwrap();
    assert_eq!(merged.items, v(&["/index.html", "/static/*"]));
    assert_eq!(merged.shares[0], (2, 0));
    assert!(merged.shares[1..].iter().all(|s| *s == (0, 2)));
}

#[test]
fn a_younger_members_wildcard_covers_an_older_members_path_and_pays_for_it() {
    let merged = merge(&[v(&["/app/x.html", "/a"]), v(&["/app/*"]), v(&["/a", "/b"])]).unwrap();
    assert_eq!(merged.items, v(&["/a", "/app/*", "/b"]));
    assert_eq!(merged.shares, vec![(1, 1), (1, 0), (1, 1)]);
    let billed: u32 = merged.shares.iter().map(|s| s.0).sum();
    assert_eq!(
        billed as usize,
        merged.items.len(),
        "the shares add up to the bill"
    );
}

#[test]
fn tags_merge_ignoring_case_and_are_never_covered() {
    let merged = merge(&[v(&["#Product-1", "/*"]), v(&["#product-1", "#other"])]).unwrap();
    assert_eq!(merged.items, v(&["#Product-1", "/*", "#other"]));
    assert_eq!(merged.shares, vec![(2, 0), (1, 1)]);
}

#[test]
fn a_member_with_invalid_paths_is_an_error_naming_the_path() {
    let err = merge(&[v(&["/ok"]), v(&["no-slash*x"])]).unwrap_err();
    assert!(!err.0.is_empty());
}

#[test]
fn escalated_the_oldest_pays_for_slash_star_and_tags_stay() {
    let merged =
        merge_escalated(&[v(&["/a/*", "/b"]), v(&["/c/*", "#Tag"]), v(&["#tag"])]).unwrap();
    assert_eq!(merged.items, v(&["/*", "#Tag"]));
    assert_eq!(merged.shares, vec![(1, 1), (1, 1), (0, 1)]);
    let billed: u32 = merged.shares.iter().map(|s| s.0).sum();
    assert_eq!(billed as usize, merged.items.len());
}
