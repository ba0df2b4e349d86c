//! What the CLI prints: text for people, JSON for pipelines.

use super::*;
use cfinv_api::paths::normalize;

fn inv(status: InvalidationStatus) -> Invalidation {
    Invalidation {
        id: "I2J0I21PCUYOIK".into(),
        status,
        create_time: Some("2024-05-01T12:00:00.123Z".parse().unwrap()),
        caller_reference: Some("cfinv-abc".into()),
        paths: vec!["/a".into(), "/img/*".into()],
    }
}

fn completed_report() -> InvalidateReport {
    let n = normalize(&["/img/*", "a", "/img/x.png", "/a"]).unwrap();
    InvalidateReport {
        outcome: "completed",
        exit_code: 0,
        distribution_id: Some("E2EXAMPLE".into()),
        caller_reference: Some("cfinv-abc".into()),
        caller_reference_source: Some("idempotencyKey"),
        elapsed_seconds: Some(65.2),
        ..Default::default()
    }
    .with_paths(&n)
    .with_invalidation(&inv(InvalidationStatus::Completed))
}

#[test]
fn invalidate_text_lists_everything_aligned() {
    let text = invalidate_text(&completed_report());
    assert_eq!(
        text,
        "\
Invalidation:     I2J0I21PCUYOIK
Distribution:     E2EXAMPLE
Status:           Completed
Created:          2024-05-01T12:00:00Z
Caller reference: cfinv-abc
Paths (2):        /img/*
                  /a
Dropped (2):      /img/x.png (covered by /img/*)
                  /a (duplicate)
Billed paths:     2 (1 wildcard, 1 object)
Elapsed:          1m05s
"
    );
}

#[test]
fn invalidate_json_uses_camel_case_and_leaves_out_what_does_not_apply() {
    let v = serde_json::to_value(completed_report()).unwrap();
    assert_eq!(v["outcome"], "completed");
    assert_eq!(v["exitCode"], 0);
    assert_eq!(v["invalidationId"], "I2J0I21PCUYOIK");
    assert_eq!(v["status"], "Completed");
    assert_eq!(v["createTime"], "2024-05-01T12:00:00.123Z");
    assert_eq!(v["callerReferenceSource"], "idempotencyKey");
    assert_eq!(v["paths"], serde_json::json!(["/img/*", "/a"]));
    assert_eq!(v["billedPaths"], 2);
    assert_eq!(
        v["dropped"][0],
        serde_json::json!({"input": "/img/x.png", "normalized": "/img/x.png", "reason": "covered", "coveredBy": "/img/*"})
    );
    assert_eq!(
        v["dropped"][1],
        serde_json::json!({"input": "/a", "normalized": "/a", "reason": "duplicate"})
    );
    assert!(v.get("error").is_none());
    assert!(v.get("cost").is_none());
}

#[test]
fn dry_run_text_says_so_and_shows_cost() {
    let n = normalize(&["index.html", "/index.html"]).unwrap();
    let r = InvalidateReport {
        outcome: "dryRun",
        distribution_id: Some("E2EXAMPLE".into()),
        caller_reference_source: Some("perRun"),
        cost: Some(crate::estimate_cost(1, None).into()),
        ..Default::default()
    }
    .with_paths(&n);
    let text = invalidate_text(&r);
    assert!(text.starts_with("Dry run: nothing was sent to CloudFront.\n"));
    assert!(text.contains("Caller reference: new for each run (no --idempotency-key)\n"));
    assert!(text.contains("Paths (1):        /index.html\n"));
    assert!(text.contains("Dropped (1):      /index.html (duplicate)\n"));
    assert!(text.contains("Billed paths:     1 (0 wildcard, 1 object)\n"));
    assert!(
        text.contains("Cost:             USD 0.005 (1 path(s) x USD 0.005)"),
        "{text}"
    );
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["cost"]["usd"], 0.005);
    assert_eq!(v["cost"]["chargedPaths"], 1);
    assert_eq!(v["cost"]["freePathsPerMonth"], 1000);
    assert!(v.get("callerReference").is_none());
}

#[test]
fn dropped_shows_the_normalized_form_when_it_differs() {
    let n = normalize(&["/a b", "a%20b"]).unwrap();
    let r = InvalidateReport::default().with_paths(&n);
    assert!(invalidate_text(&r).contains("a%20b (duplicate; normalized /a%20b)"));
    let n = normalize(&["/img/*", "img/a b"]).unwrap();
    let r = InvalidateReport::default().with_paths(&n);
    assert!(invalidate_text(&r).contains("img/a b (covered by /img/*; normalized /img/a%20b)"));
}

#[test]
fn get_text_and_json() {
    let r = InvalidationReport::new(
        &Target::Distribution("E2EXAMPLE".into()),
        &inv(InvalidationStatus::InProgress),
    );
    assert_eq!(
        invalidation_text(&r),
        "\
Invalidation:     I2J0I21PCUYOIK
Distribution:     E2EXAMPLE
Status:           InProgress
Created:          2024-05-01T12:00:00Z
Caller reference: cfinv-abc
Paths (2):        /a
                  /img/*
"
    );
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["invalidationId"], "I2J0I21PCUYOIK");
    assert_eq!(v["distributionId"], "E2EXAMPLE");
    assert!(v.get("distributionTenantId").is_none(), "{v}");
    assert_eq!(v["paths"][1], "/img/*");

    // A tenant's invalidation names the tenant, in the flag's words.
    let tenant = Target::Tenant("dt_2yMvQgam3QkJo2z54FDl91dk1AB".into());
    let r = InvalidationReport::new(&tenant, &inv(InvalidationStatus::Completed));
    let text = invalidation_text(&r);
    assert!(
        text.contains("Tenant:           dt_2yMvQgam3QkJo2z54FDl91dk1AB\n")
            && !text.contains("Distribution:"),
        "{text}"
    );
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["distributionTenantId"], "dt_2yMvQgam3QkJo2z54FDl91dk1AB");
    assert!(v.get("distributionId").is_none(), "{v}");
}

#[test]
fn list_table_is_aligned() {
    let r = ListReport {
        target: (&Target::Distribution("E2EXAMPLE".into())).into(),
        items: vec![
            SummaryReport {
                id: "I2J0I21PCUYOIK".into(),
                status: "InProgress".into(),
                create_time: Some("2024-05-01T12:00:01.5Z".into()),
            },
            SummaryReport {
                id: "IX".into(),
                status: "Completed".into(),
                create_time: None,
            },
        ],
        truncated: false,
    };
    assert_eq!(
        list_text(&r),
        "\
ID              STATUS      CREATED
I2J0I21PCUYOIK  InProgress  2024-05-01T12:00:01Z
IX              Completed
"
    );
    let empty = ListReport { items: vec![], ..r };
    assert_eq!(list_text(&empty), "ID  STATUS  CREATED\n");
}

#[test]
fn status_strings() {
    assert_eq!(status_str(&InvalidationStatus::InProgress), "InProgress");
    assert_eq!(status_str(&InvalidationStatus::Completed), "Completed");
    assert_eq!(
        status_str(&InvalidationStatus::Other("Weird".into())),
        "Weird"
    );
}
