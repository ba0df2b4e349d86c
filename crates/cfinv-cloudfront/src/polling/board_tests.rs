//! The shared ListInvalidations board against a fake CloudFront with CloudFront's list
//! semantics (newest first, pages of at most `MaxItems`, a marker while truncated), counting
//! every call.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::*;
use crate::{
    CreateInvalidation, Invalidation, InvalidationPage, InvalidationStatus, InvalidationSummary,
};

/// `n` invalidations of one distribution, `I0000` the oldest; the oldest `running` still in
/// progress.
struct Listing {
    ids: Vec<String>,
    running: usize,
    lists: AtomicUsize,
    gets: AtomicUsize,
}

impl Listing {
    fn new(n: usize, running: usize) -> Self {
        Self {
            ids: (0..n).map(|i| format!("I{i:04}")).collect(),
            running,
            lists: AtomicUsize::new(0),
            gets: AtomicUsize::new(0),
        }
    }

    fn status(&self, id: &str) -> InvalidationStatus {
        let i = self.ids.iter().position(|x| x == id).unwrap();
        if i < self.running {
            InvalidationStatus::InProgress
        } else {
            InvalidationStatus::Completed
        }
    }
}

#[async_trait]
impl CloudFront for Listing {
    async fn create_invalidation(
        &self,
        _: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError> {
        unreachable!("the board never creates")
    }

    async fn get_invalidation(&self, _: &str, id: &str) -> Result<Invalidation, CloudFrontError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        Ok(Invalidation {
            id: id.to_owned(),
            status: self.status(id),
            create_time: None,
            caller_reference: None,
            paths: Vec::new(),
        })
    }

    async fn list_invalidations(
        &self,
        _: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        let newest_first: Vec<&String> = self.ids.iter().rev().collect();
        let start = marker.map_or(0, |m| {
            newest_first.iter().position(|id| *id == m).unwrap() + 1
        });
        let max = max_items.unwrap_or(100) as usize;
        let page: Vec<&String> = newest_first[start..].iter().take(max).copied().collect();
        let truncated = start + page.len() < newest_first.len();
        Ok(InvalidationPage {
            next_marker: truncated.then(|| page.last().unwrap().to_string()),
            items: page
                .iter()
                .map(|id| InvalidationSummary {
                    id: id.to_string(),
                    status: self.status(id),
                    create_time: None,
                })
                .collect(),
        })
    }

    // A tenant's board is filled the same way, by its own List.
    async fn create_invalidation_for_distribution_tenant(
        &self,
        request: &CreateInvalidation,
    ) -> Result<Invalidation, CloudFrontError> {
        self.create_invalidation(request).await
    }

    async fn get_invalidation_for_distribution_tenant(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Invalidation, CloudFrontError> {
        self.get_invalidation(tenant, id).await
    }

    async fn list_invalidations_for_distribution_tenant(
        &self,
        tenant: &str,
        marker: Option<&str>,
        max_items: Option<i32>,
    ) -> Result<InvalidationPage, CloudFrontError> {
        self.list_invalidations(tenant, marker, max_items).await
    }

    async fn get_distribution_config(
        &self,
        _: &str,
    ) -> Result<crate::DistributionConfig, CloudFrontError> {
        unreachable!("the board never reads a distribution's configuration")
    }
}

/// Issue 11 item 14: an id older than the newest 100 costs one List once, then nothing on the
/// board (the caller asks GetInvalidation), even when the board is stale on every poll.
#[tokio::test]
async fn an_id_off_the_newest_page_is_not_listed_again_on_every_poll() {
    let cf = Listing::new(150, 10);
    let board = StatusBoard::default();
    for _ in 0..5 {
        let answer = board
            .completed(&cf, "E1", "I0003", Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(answer, None, "not on the newest page");
    }
    assert_eq!(
        cf.lists.load(Ordering::SeqCst),
        1,
        "one List, not one per poll"
    );
    // Ids on the page are still answered from the shared List.
    let newest = board
        .completed(&cf, "E1", "I0149", Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(newest, Some(true));
    assert_eq!(cf.lists.load(Ordering::SeqCst), 1);
    assert_eq!(
        cf.gets.load(Ordering::SeqCst),
        0,
        "the board itself never Gets"
    );
}

#[tokio::test]
async fn ids_on_the_page_share_one_list_per_interval() {
    let cf = Listing::new(40, 5);
    let board = StatusBoard::default();
    for i in 0..40 {
        let id = format!("I{i:04}");
        let done = board
            .completed(&cf, "E1", &id, Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(done, Some(i >= 5), "{id}");
    }
    assert_eq!(cf.lists.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_id_newer_than_the_board_refreshes_it_once() {
    let mut cf = Listing::new(120, 0);
    let board = StatusBoard::default();
    assert_eq!(
        board
            .completed(&cf, "E1", "I0119", Duration::from_secs(3600))
            .await
            .unwrap(),
        Some(true)
    );
    cf.ids.push("I0120".into());
    cf.running = 121;
    assert_eq!(
        board
            .completed(&cf, "E1", "I0120", Duration::from_secs(3600))
            .await
            .unwrap(),
        Some(false),
        "submitted after the last List: listed again, found"
    );
    assert_eq!(cf.lists.load(Ordering::SeqCst), 2);
}
