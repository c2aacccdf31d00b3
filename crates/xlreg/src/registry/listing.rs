//! Paged listings of the live clusters (status page, admin API): what a
//! page is, and how a registry held in memory answers one.
//!
//! Why pages: a status page refreshed every second, or an admin script,
//! must not make the server read (or copy) the whole registry; every
//! store answers [`Backend::listing`](super::Backend::listing) with at
//! most [`MAX_LISTING_PAGE`] clusters.

use super::rules::Registry;
use crate::wire::NodeId;

/// Most clusters one listing page holds.
pub const MAX_LISTING_PAGE: usize = 500;

/// Which clusters a listing page holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListingOrder {
    /// By name (bytewise), starting after this name (`None`: from the
    /// first).
    ByName {
        /// The last name of the previous page.
        after: Option<Vec<u8>>,
    },
    /// The most recently active (last Create, Join or GetCluster) first;
    /// what the status page shows.
    RecentlyActive,
    /// The one cluster of this name, if it is live.
    Named(Vec<u8>),
}

/// A request for one page of the live clusters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListingPage {
    /// Which clusters, in which order.
    pub order: ListingOrder,
    /// Most clusters wanted (clamped to 1..=[`MAX_LISTING_PAGE`]).
    pub limit: usize,
}

impl ListingPage {
    /// The page size asked for, within its bounds.
    pub fn bounded_limit(&self) -> usize {
        self.limit.clamp(1, MAX_LISTING_PAGE)
    }
}

/// One page of the live clusters.
#[derive(Debug, Default)]
pub struct Listing {
    /// The clusters of the page (committed, live, with their committed
    /// members), in a registry that applies the store's
    /// [`Policy`](super::Policy), so [`Registry::ttl_of`] and
    /// [`Registry::expires_at`] are the store's.
    pub registry: Registry,
    /// The page's cluster IDs, in the order asked.
    pub clusters: Vec<NodeId>,
    /// Live clusters in the whole registry.
    pub total_clusters: usize,
    /// Members of live clusters in the whole registry.
    pub total_members: usize,
    /// For [`ListingOrder::ByName`]: the name to ask for the next page
    /// after, if there are more clusters.
    pub next: Option<Vec<u8>>,
}

/// The page `page` of the committed live clusters of `reg` (a whole
/// registry in memory); reads `reg`'s clusters once.
pub fn page_of(reg: &Registry, page: &ListingPage) -> Listing {
    let limit = page.bounded_limit();
    let mut total_clusters = 0;
    let mut total_members = 0;
    for c in reg.clusters() {
        total_clusters += 1;
        total_members += c.len();
    }
    let mut next = None;
    let ids: Vec<NodeId> = match &page.order {
        ListingOrder::Named(name) => reg
            .cluster_by_name(name)
            .map(|c| c.id)
            .into_iter()
            .collect(),
        ListingOrder::ByName { after } => {
            let mut v: Vec<_> = reg
                .clusters()
                .filter(|c| after.as_deref().is_none_or(|a| &c.name[..] > a))
                .collect();
            if v.len() > limit {
                v.select_nth_unstable_by(limit, |a, b| a.name.cmp(&b.name));
                v.truncate(limit);
            }
            v.sort_by(|a, b| a.name.cmp(&b.name));
            if v.len() == limit && total_clusters > 0 {
                let last = &v[limit - 1].name;
                if reg.clusters().any(|c| c.name > *last) {
                    next = Some(last.to_vec());
                }
            }
            v.into_iter().map(|c| c.id).collect()
        }
        ListingOrder::RecentlyActive => {
            let mut v: Vec<_> = reg.clusters().collect();
            if v.len() > limit {
                v.select_nth_unstable_by(limit - 1, |a, b| b.last_active_ms.cmp(&a.last_active_ms));
                v.truncate(limit);
            }
            v.sort_by(|a, b| {
                b.last_active_ms
                    .cmp(&a.last_active_ms)
                    .then_with(|| a.name.cmp(&b.name))
            });
            v.into_iter().map(|c| c.id).collect()
        }
    };
    Listing {
        registry: reg.subset(&ids),
        clusters: ids,
        total_clusters,
        total_members,
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(n: usize) -> Registry {
        let mut r = Registry::new(NodeId::random());
        for i in 0..n {
            r.set_now(1_000 + i as u64);
            r.create(format!("c{i:04}").as_bytes(), 2, 0, 1).unwrap();
        }
        r.commit();
        r
    }

    fn names(l: &Listing) -> Vec<String> {
        l.clusters
            .iter()
            .map(|id| String::from_utf8_lossy(&l.registry.cluster(id).unwrap().name).into_owned())
            .collect()
    }

    #[test]
    fn pages_by_name_cover_every_cluster_once_and_stop() {
        let r = reg(7);
        let mut after = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let l = page_of(
                &r,
                &ListingPage {
                    order: ListingOrder::ByName { after },
                    limit: 3,
                },
            );
            assert_eq!((l.total_clusters, l.total_members), (7, 0));
            assert!(l.clusters.len() <= 3);
            seen.extend(names(&l));
            after = l.next;
            if after.is_none() {
                break;
            }
        }
        let want: Vec<String> = (0..7).map(|i| format!("c{i:04}")).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_page_is_bounded_whatever_the_limit_asked() {
        let r = reg(MAX_LISTING_PAGE + 3);
        let l = page_of(
            &r,
            &ListingPage {
                order: ListingOrder::RecentlyActive,
                limit: usize::MAX,
            },
        );
        assert_eq!(l.clusters.len(), MAX_LISTING_PAGE);
        assert_eq!(l.registry.clusters().count(), MAX_LISTING_PAGE);
        assert_eq!(l.total_clusters, MAX_LISTING_PAGE + 3);
        assert_eq!(
            names(&l)[0],
            format!("c{:04}", MAX_LISTING_PAGE + 2),
            "the most recently active first"
        );
    }

    #[test]
    fn a_named_page_holds_that_cluster_only() {
        let r = reg(4);
        let l = page_of(
            &r,
            &ListingPage {
                order: ListingOrder::Named(b"c0002".to_vec()),
                limit: 1,
            },
        );
        assert_eq!(names(&l), vec!["c0002".to_string()]);
        let none = page_of(
            &r,
            &ListingPage {
                order: ListingOrder::Named(b"nope".to_vec()),
                limit: 1,
            },
        );
        assert!(none.clusters.is_empty());
    }
}
