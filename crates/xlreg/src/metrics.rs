//! What a running registry counts, for Prometheus.
//!
//! Why `prometheus-client` (the Prometheus project's own Rust client)
//! rather than the `metrics` facade: its registry is a value, not a
//! process-global recorder, so every [`crate::server::Server`] has its own
//! counters — several registries in one test process (or one program) never
//! mix their numbers. Names follow the Prometheus conventions: counters end
//! in `_total`, durations are histograms in `_seconds`.
//!
//! Label values are bounded: Error texts are normalised (long hex and digit
//! runs, such as a cluster ID in `doGetMsg: can't find cluster with ID …`,
//! become `…`) and at most [`MAX_ERROR_TEXTS`] distinct texts get their own
//! series; the rest count under `other`. A client cannot grow the scrape.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Most distinct Error texts with their own series.
pub const MAX_ERROR_TEXTS: usize = 64;

/// Label set with one `outcome` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// How the session ended: bye, refused, peer_closed, timeout, bad_input, shutdown.
    pub outcome: String,
}

/// Label set with one `text` label (an Error reply's text).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TextLabel {
    /// Normalised Error text.
    pub text: String,
}

/// Label set with one `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why: timeout, bad_hello, peer_closed.
    pub reason: String,
}

/// Label set with one `op` label (a request's protocol name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    /// Member, Create, Join, GetCluster, Bye, RegCred, other.
    pub op: String,
}

/// Label set with one `limit` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    /// The limit that refused a request: max_clusters, registrations_per_address.
    pub limit: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The ops the server times (`request_done`); each gets a handle resolved
/// on first use, so a request costs no label allocation or map lookup.
const OPS: [&str; 12] = [
    "RegCred",
    "Member",
    "Create",
    "Join",
    "GetCluster",
    "DeleteCluster",
    "Resize",
    "Evict",
    "Leave",
    "Watch",
    "Bye",
    "other",
];

/// The session outcomes the server counts (`session_ended`), resolved
/// like [`OPS`].
const OUTCOMES: [&str; 6] = [
    "bye",
    "refused",
    "peer_closed",
    "timeout",
    "bad_input",
    "shutdown",
];

fn latency_histogram() -> Histogram {
    // 50 µs .. ~13 s.
    Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
}

/// Every metric of one registry.
pub struct Metrics {
    registry: Registry,
    /// Sessions ended, by outcome.
    pub sessions: Family<OutcomeLabel, Counter>,
    /// Error replies sent, by (normalised) text.
    pub error_replies: Family<TextLabel, Counter>,
    /// Connections that never completed the Hello, by reason.
    pub handshake_failures: Family<ReasonLabel, Counter>,
    /// Connections being served now.
    pub connections: Gauge,
    /// GetCluster requests being held for members now.
    pub held_getclusters: Gauge,
    /// Watch requests (an xlreg extension) being held for a change now.
    pub held_watches: Gauge,
    /// Member requests answered with MemberOK.
    pub registrations: Counter,
    /// Create requests answered with CreateReply.
    pub creates: Counter,
    /// Join requests answered with JoinReply.
    pub joins: Counter,
    /// Clusters in the registry (set at scrape time).
    pub clusters: Gauge,
    /// Members in all clusters (set at scrape time).
    pub members: Gauge,
    /// Time from a request's arrival to its reply being ready, by op.
    pub request_duration: HistogramFamily<OpLabel>,
    /// Time to make one batch of changes durable.
    pub store_commit_duration: Histogram,
    /// Clusters removed because their TTL ran out.
    pub expired_clusters: Counter,
    /// Clusters removed by an operator (admin API).
    pub deleted_clusters: Counter,
    /// Requests refused by a limit, by limit.
    pub limit_refusals: Family<LimitLabel, Counter>,
    known_texts: Mutex<HashSet<String>>,
    /// `request_duration`'s series for each of [`OPS`], once used.
    op_handles: [OnceLock<Histogram>; OPS.len()],
    /// `sessions`' series for each of [`OUTCOMES`], once used.
    outcome_handles: [OnceLock<Counter>; OUTCOMES.len()],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all zero.
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("xlreg"),
            sessions: Family::default(),
            error_replies: Family::default(),
            handshake_failures: Family::default(),
            connections: Gauge::default(),
            held_getclusters: Gauge::default(),
            held_watches: Gauge::default(),
            registrations: Counter::default(),
            creates: Counter::default(),
            joins: Counter::default(),
            clusters: Gauge::default(),
            members: Gauge::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            store_commit_duration: latency_histogram(),
            expired_clusters: Counter::default(),
            deleted_clusters: Counter::default(),
            limit_refusals: Family::default(),
            known_texts: Mutex::new(HashSet::new()),
            op_handles: Default::default(),
            outcome_handles: Default::default(),
        };
        let r = &mut m.registry;
        r.register("sessions", "Sessions ended, by outcome", m.sessions.clone());
        r.register(
            "error_replies",
            "Error replies sent, by text",
            m.error_replies.clone(),
        );
        r.register(
            "handshake_failures",
            "Connections that failed the Hello, by reason",
            m.handshake_failures.clone(),
        );
        r.register(
            "connections",
            "Connections being served",
            m.connections.clone(),
        );
        r.register(
            "held_getclusters",
            "GetCluster requests held waiting for members",
            m.held_getclusters.clone(),
        );
        r.register(
            "held_watches",
            "Watch requests held waiting for a change",
            m.held_watches.clone(),
        );
        r.register(
            "registrations",
            "Members registered (MemberOK sent)",
            m.registrations.clone(),
        );
        r.register("creates", "Create requests answered", m.creates.clone());
        r.register("joins", "Join requests answered", m.joins.clone());
        r.register("clusters", "Clusters in the registry", m.clusters.clone());
        r.register("members", "Members in all clusters", m.members.clone());
        r.register_with_unit(
            "request_duration",
            "Request handling time, by op",
            Unit::Seconds,
            m.request_duration.clone(),
        );
        r.register_with_unit(
            "store_commit_duration",
            "Time to make a batch of changes durable",
            Unit::Seconds,
            m.store_commit_duration.clone(),
        );
        r.register(
            "expired_clusters",
            "Clusters removed because their TTL ran out",
            m.expired_clusters.clone(),
        );
        r.register(
            "deleted_clusters",
            "Clusters deleted by an operator",
            m.deleted_clusters.clone(),
        );
        r.register(
            "limit_refusals",
            "Requests refused by a limit, by limit",
            m.limit_refusals.clone(),
        );
        m
    }

    /// Count one session's end.
    pub fn session_ended(&self, outcome: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            let c = self.outcome_handles[i].get_or_init(|| {
                self.sessions
                    .get_or_create(&OutcomeLabel {
                        outcome: outcome.into(),
                    })
                    .clone()
            });
            c.inc();
            return;
        }
        self.sessions
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Count one Error reply.
    pub fn error_reply(&self, text: &str) {
        let mut text = normalise(text);
        {
            let mut known = self.known_texts.lock().unwrap_or_else(|p| p.into_inner());
            if !known.contains(&text) {
                if known.len() >= MAX_ERROR_TEXTS {
                    text = "other".into();
                } else {
                    known.insert(text.clone());
                }
            }
        }
        self.error_replies.get_or_create(&TextLabel { text }).inc();
    }

    /// Count one failed handshake.
    pub fn handshake_failed(&self, reason: &str) {
        self.handshake_failures
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Record one request's handling time.
    pub fn request_done(&self, op: &str, took: Duration) {
        if let Some(i) = OPS.iter().position(|o| *o == op) {
            let h = self.op_handles[i].get_or_init(|| {
                self.request_duration
                    .get_or_create(&OpLabel { op: op.into() })
                    .clone()
            });
            h.observe(took.as_secs_f64());
            return;
        }
        self.request_duration
            .get_or_create(&OpLabel { op: op.into() })
            .observe(took.as_secs_f64());
    }

    /// Count one refusal by `limit`.
    pub fn limit_refused(&self, limit: &str) {
        self.limit_refusals
            .get_or_create(&LimitLabel {
                limit: limit.into(),
            })
            .inc();
    }

    /// The Prometheus text exposition (OpenMetrics text, which Prometheus
    /// scrapes), ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Replace runs of 8 or more hex digits (IDs, keys) with `…` and cut to 120
/// characters, so a label value never carries a per-request value.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(128));
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 8 {
            out.push('…');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for ch in text.chars() {
        if ch.is_ascii_hexdigit() {
            run.push(ch);
        } else {
            flush(&mut run, &mut out);
            out.push(ch);
        }
    }
    flush(&mut run, &mut out);
    if out.chars().count() > 120 {
        out = out.chars().take(120).collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_hides_ids_and_keeps_words() {
        assert_eq!(
            normalise("doGetMsg: can't find cluster with ID 0101010101010101"),
            "doGetMsg: can't find cluster with ID …"
        );
        assert_eq!(
            normalise("member has 1 endPoints, cluster requires 2"),
            "member has 1 endPoints, cluster requires 2"
        );
        assert_eq!(normalise(&"x".repeat(500)).len(), 120);
    }

    #[test]
    fn error_texts_beyond_the_cap_count_as_other() {
        let m = Metrics::new();
        for i in 0..MAX_ERROR_TEXTS + 10 {
            m.error_reply(&format!("text number {i} zz"));
        }
        let other = m
            .error_replies
            .get_or_create(&TextLabel {
                text: "other".into(),
            })
            .get();
        assert_eq!(other, 10);
        assert!(m
            .encode()
            .contains("xlreg_error_replies_total{text=\"text number 1 zz\"} 1"));
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        let m = Metrics::new();
        m.session_ended("bye");
        m.request_done("Join", Duration::from_millis(2));
        let text = m.encode();
        assert!(
            text.contains("xlreg_sessions_total{outcome=\"bye\"} 1"),
            "{text}"
        );
        assert!(text.contains("xlreg_request_duration_seconds_count{op=\"Join\"} 1"));
        assert!(text.contains("# TYPE xlreg_store_commit_duration_seconds histogram"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn cached_handles_count_into_the_scraped_series_and_unused_ones_stay_absent() {
        let m = Metrics::new();
        for _ in 0..3 {
            m.session_ended("bye");
            m.request_done("Member", Duration::from_micros(80));
        }
        m.session_ended("not-a-known-outcome");
        m.request_done("not-an-op", Duration::from_micros(80));
        let text = m.encode();
        assert!(
            text.contains("xlreg_sessions_total{outcome=\"bye\"} 3"),
            "{text}"
        );
        assert!(text.contains("xlreg_request_duration_seconds_count{op=\"Member\"} 3"));
        assert!(text.contains("xlreg_sessions_total{outcome=\"not-a-known-outcome\"} 1"));
        assert!(text.contains("xlreg_request_duration_seconds_count{op=\"not-an-op\"} 1"));
        assert!(!text.contains("op=\"Join\""), "{text}");
        assert!(!text.contains("outcome=\"refused\""), "{text}");
    }
}
