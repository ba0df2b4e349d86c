//! The CacheTagConfig check: the cache (once per distribution per lifetime, shared by
//! concurrent lookups, errors as "unknown": refusals for the lifetime, transient ones for a minute), and through reconcile: one Warning Event per tag
//! object on a distribution without a CacheTagConfig, none otherwise, no call for paths alone.

use super::*;
use crate::controller::cache_tags::{self, CacheTagConfigs, CacheTags};
use cfinv_api::crd::Target;

fn absent() -> Result<DistributionConfig, CloudFrontError> {
    Ok(DistributionConfig {
        cache_tag_header: None,
    })
}

fn configured() -> Result<DistributionConfig, CloudFrontError> {
    Ok(DistributionConfig {
        cache_tag_header: Some("x-amz-meta-cache-tag".to_owned()),
    })
}

#[tokio::test]
async fn the_config_is_asked_once_per_distribution_per_lifetime() {
    let cf = FakeCloudFront::default()
        .on_config(absent())
        .on_config(configured())
        .on_config(configured());
    let cache = CacheTagConfigs::new(Duration::from_secs(3600));

    assert_eq!(cache.lookup(&cf, "E1", now()).await, CacheTags::Absent);
    let later = now() + SignedDuration::from_secs(3599);
    assert_eq!(cache.lookup(&cf, "E1", later).await, CacheTags::Absent);
    assert_eq!(
        cf.config_gets(),
        ["E1"],
        "the second lookup is answered from the cache"
    );

    assert_eq!(
        cache.lookup(&cf, "E2", later).await,
        CacheTags::Configured {
            header: "x-amz-meta-cache-tag".into()
        }
    );
    assert_eq!(cf.config_gets(), ["E1", "E2"], "one entry per distribution");

    // After its lifetime the answer is asked again (a CacheTagConfig added meanwhile counts),
    // and the expired entry of E2 is gone.
    let expired = now() + SignedDuration::from_secs(3600);
    assert!(matches!(
        cache.lookup(&cf, "E1", expired).await,
        CacheTags::Configured { .. }
    ));
    assert_eq!(cf.config_gets(), ["E1", "E2", "E1"]);
    assert_eq!(cache.tracked(), 2);
    let much_later = now() + SignedDuration::from_secs(7200);
    cache.lookup(&cf, "E1", much_later).await;
    assert_eq!(cache.tracked(), 1, "E2 expired and was dropped");
}

#[tokio::test]
async fn concurrent_lookups_of_one_distribution_share_one_call() {
    let cf = FakeCloudFront::default().on_config(absent());
    let cache = CacheTagConfigs::new(cache_tags::LIFETIME);

    let (a, b, c) = tokio::join!(
        cache.lookup(&cf, "E1", now()),
        cache.lookup(&cf, "E1", now()),
        cache.lookup(&cf, "E1", now()),
    );

    assert_eq!(
        [a, b, c],
        [CacheTags::Absent, CacheTags::Absent, CacheTags::Absent]
    );
    assert_eq!(cf.config_gets().len(), 1);
}

#[tokio::test]
async fn a_refusal_means_unknown_for_the_lifetime_a_transient_error_for_a_minute() {
    let refusals = [
        CloudFrontError::service("AccessDenied", "not authorized", 403),
        CloudFrontError::service("NoSuchDistribution", "no such distribution", 404),
    ];
    let transient = [
        CloudFrontError::service("Throttling", "Rate exceeded", 400),
        CloudFrontError::service("ServiceUnavailable", "try later", 503),
        CloudFrontError::network("connection refused"),
        CloudFrontError::timeout("no answer"),
    ];
    let cases = refusals
        .into_iter()
        .map(|e| (e, cache_tags::LIFETIME))
        .chain(
            transient
                .into_iter()
                .map(|e| (e, cache_tags::TRANSIENT_LIFETIME)),
        );
    for (error, keep) in cases {
        let label = error.label().to_owned();
        let cf = FakeCloudFront::default()
            .on_config(Err(error))
            .on_config(absent());
        let cache = CacheTagConfigs::new(cache_tags::LIFETIME);
        let keep = SignedDuration::try_from(keep).expect("duration");
        assert_eq!(
            cache.lookup(&cf, "E1", now()).await,
            CacheTags::Unknown,
            "{label}"
        );
        let just_before = now() + keep - SignedDuration::from_secs(1);
        assert_eq!(
            cache.lookup(&cf, "E1", just_before).await,
            CacheTags::Unknown,
            "{label}"
        );
        assert_eq!(
            cf.config_gets().len(),
            1,
            "{label}: asked once within {keep}"
        );
        // Then asked again: the CacheTagConfig's absence is now known.
        assert_eq!(
            cache.lookup(&cf, "E1", now() + keep).await,
            CacheTags::Absent,
            "{label}"
        );
        assert_eq!(
            cf.config_gets().len(),
            2,
            "{label}: asked again after {keep}"
        );
    }
}

#[test]
fn only_distributions_that_were_sent_tags_are_checked() {
    let d = Target::Distribution("E1".into());
    let t = Target::Tenant("dt_abc".into());
    let tags = vec!["#product:tv".to_owned(), "/index.html".to_owned()];
    let paths = vec!["/index.html".to_owned(), "/static/*".to_owned()];
    assert_eq!(
        cache_tags::distribution_to_check(&d, &tags),
        Some("E1".into())
    );
    assert_eq!(cache_tags::distribution_to_check(&d, &paths), None);
    // A tenant's distribution is unknown to the operator: not checked.
    assert_eq!(cache_tags::distribution_to_check(&t, &tags), None);
}

#[test]
fn the_warning_names_the_distribution_and_the_tags() {
    let items: Vec<String> = ["/index.html", "#a", "#b", "#c", "#d", "#e", "#f", "#g"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let event = cache_tags::warning("E2EXAMPLE", &items);
    assert_eq!(event.type_, kube::runtime::events::EventType::Warning);
    assert_eq!(event.reason, "NoCacheTagConfig");
    let note = event.note.unwrap();
    assert!(
        note.contains("distribution E2EXAMPLE has no CacheTagConfig")
            && note.contains("7 tag item(s) sent (#a, #b, #c, #d, #e and 2 more) match nothing"),
        "{note}"
    );
    assert!(!note.contains("/index.html"), "paths are not tags: {note}");
}

/// The background check publishes its Event a moment after reconcile returns.
async fn wait_for_events(h: &Harness, reason: &str, n: usize) -> Vec<(String, String)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<_> = h
            .api
            .events()
            .into_iter()
            .filter(|(_, r)| r == reason)
            .collect();
        if found.len() >= n || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The warnings published so far.
fn warnings(h: &Harness) -> usize {
    h.api
        .events()
        .iter()
        .filter(|(_, reason)| reason == cache_tags::REASON)
        .count()
}

/// Lets every spawned check run to its end (they make no call that waits on the clock).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn tags_on_a_distribution_without_cache_tag_config_warn_each_object_after_one_call() {
    let first = named(
        "first",
        "5f1c0b6e-0000-4000-8000-0000000000a1",
        &["#product:tv"],
    );
    let second = named(
        "second",
        "5f1c0b6e-0000-4000-8000-0000000000a2",
        &["#category:tv", "/index.html"],
    );
    let h = harness(
        &first,
        FakeCloudFront::default()
            .on_create(Ok(InvalidationStatus::InProgress))
            .on_create(Ok(InvalidationStatus::InProgress))
            .on_config(absent()),
    );

    reconcile(Arc::new(first), h.ctx.clone()).await.unwrap();
    // The submission did not wait for the check: the status is written already.
    assert_eq!(
        h.api.status_writes().last().unwrap().phase,
        Some(Phase::InProgress)
    );
    let events = wait_for_events(&h, "NoCacheTagConfig", 1).await;
    assert_eq!(events, [("Warning".into(), "NoCacheTagConfig".into())]);

    reconcile(Arc::new(second), h.ctx.clone()).await.unwrap();
    let events = wait_for_events(&h, "NoCacheTagConfig", 2).await;
    assert_eq!(events.len(), 2, "each object is warned");
    settle().await;
    assert_eq!(
        h.cloudfront.config_gets(),
        ["E2EXAMPLE"],
        "one call for both"
    );
    assert_eq!(h.cloudfront.creates().len(), 2);
    let notes: Vec<String> = h
        .api
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path.contains("/events") && r.body["reason"] == cache_tags::REASON)
        .map(|r| r.body["note"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        notes[1].contains("distribution E2EXAMPLE has no CacheTagConfig")
            && notes[1].contains("(#category:tv)"),
        "{notes:?}"
    );
}

#[tokio::test]
async fn no_warning_when_the_config_is_there_or_cannot_be_read() {
    for (what, reply) in [
        ("configured", configured()),
        (
            "denied",
            Err(CloudFrontError::service(
                "AccessDenied",
                "User is not authorized to perform: cloudfront:GetDistribution",
                403,
            )),
        ),
    ] {
        let obj = object(&["#product:tv"]);
        let h = harness(
            &obj,
            FakeCloudFront::default()
                .on_create(Ok(InvalidationStatus::InProgress))
                .on_config(reply),
        );

        reconcile(Arc::new(obj), h.ctx.clone()).await.unwrap();
        settle().await;

        assert_eq!(h.cloudfront.config_gets().len(), 1, "{what}");
        assert_eq!(warnings(&h), 0, "{what}");
        let status = h.api.status_writes().pop().unwrap();
        assert_eq!(status.phase, Some(Phase::InProgress), "{what}");
        assert_eq!(h.api.status_writes().len(), 1, "{what}: one write");
    }
}

#[tokio::test]
async fn paths_alone_and_tenants_never_read_the_distribution_config() {
    let paths = object(&["/index.html", "/static/*"]);
    let h = harness(
        &paths,
        FakeCloudFront::default()
            .on_create(Ok(InvalidationStatus::InProgress))
            .on_create(Ok(InvalidationStatus::InProgress))
            .on_config(absent()),
    );
    reconcile(Arc::new(paths), h.ctx.clone()).await.unwrap();

    let mut tenant = tenant_object(&["#product:tv"]);
    tenant.metadata.uid = Some("5f1c0b6e-0000-4000-8000-0000000000b2".into());
    reconcile(Arc::new(tenant), h.ctx.clone()).await.unwrap();
    settle().await;

    assert_eq!(h.cloudfront.config_gets(), Vec::<String>::new());
    assert_eq!(h.cloudfront.calls(), 2, "the two creates only");
    assert_eq!(warnings(&h), 0);
}
