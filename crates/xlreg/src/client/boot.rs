//! The one-call flows: create a cluster, boot a member, read a cluster.
//!
//! Why: what a member wants is "tell me my whole cluster", not a protocol
//! conversation. [`boot`] does register → join → gather → bye and returns a
//! complete [`ClusterView`] or an error saying how many of how many members
//! arrived — never a silently partial table as the Go client does (§16.18:
//! it reports success with empty slots after 32 polls 50 ms apart).
//!
//! Gathering asks for exactly the indexes still missing below the cluster's
//! size. An xlreg registry holds a GetCluster reply until all of them are
//! present or about a second has passed, so one round normally suffices; a
//! Go registry answers at once and may return fewer tokens than asked (its
//! replies must stay under 16 KiB), so rounds repeat; when a round brings
//! nothing new and came back quickly, the client backs off (20 ms doubling
//! to 500 ms by default) until the deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::connection::{deadline_after, ClientOptions};
use super::node::{attrs, NodeIdentity, NodeOptions};
use super::session::{ClusterInfo, ClusterRef, ClusterSpec, Session};
use super::view::{ClusterView, MemberInfo, MemberList};
use super::ClientError;
use crate::regcred::RegCred;
use crate::wire::{Framing, NodeId, Which};

/// A GetCluster round shorter than this "came back quickly" (the registry
/// did not hold it), so an empty round is followed by a backoff sleep.
const QUICK_ROUND: Duration = Duration::from_millis(250);

/// How [`boot`] behaves.
#[derive(Clone, Debug)]
pub struct BootOptions {
    /// Connection settings.
    pub client: ClientOptions,
    /// How long to wait, from the JoinReply on, for the cluster to fill.
    /// `None`: return right after the join with the members known so far
    /// (one round against an xlreg registry, which may hold it ~1 s).
    /// Default 30 s.
    pub wait: Option<Duration>,
    /// Member attribute bits to register with. Default 0.
    pub attrs: u64,
    /// First backoff sleep after an empty quick round. Default 20 ms.
    pub backoff_start: Duration,
    /// Backoff cap. Default 500 ms.
    pub backoff_max: Duration,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            client: ClientOptions::default(),
            wait: Some(Duration::from_secs(30)),
            attrs: 0,
            backoff_start: Duration::from_millis(20),
            backoff_max: Duration::from_millis(500),
        }
    }
}

async fn generate_blocking(opts: NodeOptions) -> Result<NodeIdentity, ClientError> {
    tokio::task::spawn_blocking(move || NodeIdentity::generate(&opts))
        .await
        .map_err(|e| ClientError::Identity(format!("key generation task failed: {e}")))?
}

/// Create a cluster as an administrator with a fresh ephemeral identity
/// (name `admin`, 2048-bit keys, attrs ADMIN|SOLO|EPHEMERAL like the Go
/// admin client). If the name exists, the registry returns the existing
/// cluster (with its own size and endpoint count): compare the returned
/// [`ClusterInfo`] with `spec` when that matters.
pub async fn create_cluster(
    regcred: &RegCred,
    spec: &ClusterSpec,
    opts: &ClientOptions,
) -> Result<ClusterInfo, ClientError> {
    let admin = generate_blocking(NodeOptions {
        name: Some("admin".into()),
        ..NodeOptions::default()
    })
    .await?;
    create_cluster_as(regcred, &admin, spec, opts).await
}

/// [`create_cluster`] with a given administrator identity.
///
/// A [`ClusterSpec::ttl`] needs an xlreg registry: a Go registry (or
/// legacy framing) cannot carry it, so there the cluster is created
/// without one and a warning is logged.
pub async fn create_cluster_as(
    regcred: &RegCred,
    admin: &NodeIdentity,
    spec: &ClusterSpec,
    opts: &ClientOptions,
) -> Result<ClusterInfo, ClientError> {
    // Create is idempotent by name: safe to run again elsewhere.
    failing_over(regcred, opts, "create", |mut s| async move {
        s.register(admin, attrs::ADMIN | attrs::SOLO | attrs::EPHEMERAL)
            .await?;
        let info = if spec.ttl.is_some() && s.framing() != Framing::LengthPrefixed {
            tracing::warn!(
                cluster = spec.name,
                "this registry cannot carry a cluster TTL (a Go registry, or legacy framing); \
                 the cluster will not expire"
            );
            let mut plain = spec.clone();
            plain.ttl = None;
            s.create(&plain).await?
        } else {
            s.create(spec).await?
        };
        s.bye().await?;
        Ok(info)
    })
    .await
}

/// Register a node without joining anything (the Go "solo" flow): Member,
/// then Bye. Returns the ID the registry confirmed.
pub async fn register(
    regcred: &RegCred,
    node: &NodeIdentity,
    opts: &ClientOptions,
) -> Result<NodeId, ClientError> {
    // The same key may register its ID again.
    failing_over(regcred, opts, "register", |mut s| async move {
        let id = s.register(node, attrs::SOLO).await?;
        s.bye().await?;
        Ok(id)
    })
    .await
}

/// Run a whole session `flow` on the first server that takes the
/// connection ([`Session::connect`] tries a regCred's endpoints in order);
/// if the session then breaks (or the server's database is down), run it
/// again from the start on the next server, once per listed server. Only
/// for flows that are safe to repeat: every registry request is
/// idempotent for the same identity (re-register, create by name, re-join
/// keeps the slot). `opts.address` pins one server: no second attempt.
async fn failing_over<T, F, Fut>(
    regcred: &RegCred,
    opts: &ClientOptions,
    what: &str,
    mut flow: F,
) -> Result<T, ClientError>
where
    F: FnMut(Session) -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let tries = if opts.address.is_some() {
        1
    } else {
        regcred.endpoints.len().max(1)
    };
    let mut rc = regcred.clone();
    for attempt in 1.. {
        // Connecting already tries every server in turn.
        let s = Session::connect(&rc, opts).await?;
        let addr = s.addr().to_string();
        match flow(s).await {
            Err(e) if attempt < tries && e.is_failover() => {
                tracing::warn!(
                    "{what} through {addr} failed ({}); retrying on the next server",
                    crate::ErrorChain(&e)
                );
                rc.endpoints = next_first(&rc.endpoints, Some(&addr));
            }
            r => return r,
        }
    }
    unreachable!("the last attempt returns")
}

/// Boot a member: register, join `cluster`, gather every member, bye.
///
/// With `opts.wait = Some(d)` the result is complete (all `max_size`
/// members) or the error is [`ClientError::IncompleteCluster`]; with
/// `None` it holds the members known right after the join.
///
/// With a regCred listing several servers of a group, a session that
/// breaks mid-way (or meets a server whose database is down) is run again
/// from the start on the next server: every step is idempotent (the same
/// key re-registers its ID, a member re-joining keeps its slot).
pub async fn boot(
    regcred: &RegCred,
    cluster: &ClusterRef,
    node: &NodeIdentity,
    opts: &BootOptions,
) -> Result<ClusterView, ClientError> {
    failing_over(regcred, &opts.client, "boot", |s| {
        boot_then_bye(s, cluster, node, opts)
    })
    .await
}

/// `endpoints` rotated so the one after `failed` comes first (after the
/// first one when `failed` is not among them).
fn next_first(endpoints: &[String], failed: Option<&str>) -> Vec<String> {
    let at = failed
        .and_then(|f| endpoints.iter().position(|e| e == f))
        .unwrap_or(0);
    let mut out = endpoints.to_vec();
    out.rotate_left((at + 1) % endpoints.len().max(1));
    out
}

async fn boot_then_bye(
    mut s: Session,
    cluster: &ClusterRef,
    node: &NodeIdentity,
    opts: &BootOptions,
) -> Result<ClusterView, ClientError> {
    let r = boot_in(&mut s, cluster, node, opts).await;
    match r {
        Ok(view) => {
            if let Err(e) = s.bye().await {
                // The member has its view; a failed goodbye changes nothing.
                tracing::warn!(
                    "after booting into cluster {}: {}",
                    view.cluster_id,
                    crate::ErrorChain(&e)
                );
            }
            Ok(view)
        }
        Err(e) => {
            let _ = s.bye().await;
            Err(e)
        }
    }
}

/// A place in a join queue shared by members that boot together: they
/// connect and register in parallel (the RSA work), but member `index`
/// sends its Join only after members `0..index` got their JoinReply. A new
/// cluster's slots go in join order, so member `index` gets slot `index`.
#[derive(Clone, Debug)]
pub struct JoinTurn {
    index: usize,
    joined: std::sync::Arc<tokio::sync::watch::Sender<usize>>,
}

impl JoinTurn {
    /// Turns `0..n` of one new queue.
    pub fn queue(n: usize) -> Vec<JoinTurn> {
        let joined = std::sync::Arc::new(tokio::sync::watch::Sender::new(0));
        (0..n)
            .map(|index| JoinTurn {
                index,
                joined: joined.clone(),
            })
            .collect()
    }

    async fn wait(&self) {
        let mut rx = self.joined.subscribe();
        // The sender lives in `self`, so the channel never closes here.
        let _ = rx.wait_for(|&n| n >= self.index).await;
    }

    fn done(&self) {
        self.joined.send_modify(|n| *n = (*n).max(self.index + 1));
    }
}

/// [`boot`] that joins in its [`JoinTurn`].
pub async fn boot_in_turn(
    regcred: &RegCred,
    cluster: &ClusterRef,
    node: &NodeIdentity,
    opts: &BootOptions,
    turn: JoinTurn,
) -> Result<ClusterView, ClientError> {
    // Run again on the next server like [`boot`]: the turn is already
    // taken then, so waiting for it again returns at once.
    failing_over(regcred, &opts.client, "boot", |mut s| {
        let turn = turn.clone();
        async move {
            let r = boot_session(&mut s, cluster, node, opts, Some(turn)).await;
            let _ = s.bye().await;
            r
        }
    })
    .await
}

async fn boot_in(
    s: &mut Session,
    cluster: &ClusterRef,
    node: &NodeIdentity,
    opts: &BootOptions,
) -> Result<ClusterView, ClientError> {
    boot_session(s, cluster, node, opts, None).await
}

async fn boot_session(
    s: &mut Session,
    cluster: &ClusterRef,
    node: &NodeIdentity,
    opts: &BootOptions,
    turn: Option<JoinTurn>,
) -> Result<ClusterView, ClientError> {
    s.register(node, opts.attrs).await?;
    // No wait: the caller wants what exists now, not what joins in the
    // next second.
    s.answer_at_once(opts.wait.is_none());
    if let Some(t) = &turn {
        t.wait().await;
    }
    let info = s.join(cluster).await;
    if let Some(t) = &turn {
        t.done();
    }
    let info = info?;
    if node.endpoints.len() < info.endpoint_count as usize {
        tracing::warn!(
            "cluster {} expects {} endpoints per member; {} registers {}",
            info.id,
            info.endpoint_count,
            node.name,
            node.endpoints.len()
        );
    }
    let have = gather(s, cluster, &info, node.id, opts).await?;
    let self_index = have
        .values()
        .find(|m| m.id == node.id)
        .map(|m| m.index)
        .ok_or_else(|| {
            ClientError::BadReply(format!(
                "the registry did not return this member's own token (ID {}) \
                 among the {} members of cluster {}",
                node.id,
                have.len(),
                info.id
            ))
        })?;
    Ok(ClusterView {
        cluster_id: info.id,
        cluster_name: match cluster {
            ClusterRef::Name(n) => Some(n.clone()),
            ClusterRef::Id(_) => None,
        },
        max_size: info.max_size,
        endpoint_count: info.endpoint_count,
        attrs: info.attrs,
        self_index,
        members: have.into_values().collect(),
        version: 0,
    })
}

fn bits(have: &BTreeMap<usize, MemberInfo>) -> Which {
    let mut w = Which(0);
    for i in have.keys() {
        w.insert(*i);
    }
    w
}

/// GetCluster rounds until every index below max_size is filled (or, with
/// no wait, until a round brings nothing more).
async fn gather(
    s: &mut Session,
    cluster: &ClusterRef,
    info: &ClusterInfo,
    self_id: NodeId,
    opts: &BootOptions,
) -> Result<BTreeMap<usize, MemberInfo>, ClientError> {
    let want = Which::low_n(info.max_size as usize);
    let start = Instant::now();
    let deadline = opts.wait.map(deadline_after);
    let mut have: BTreeMap<usize, MemberInfo> = BTreeMap::new();
    let mut backoff = opts.backoff_start;
    let mut rounds = 0u32;
    loop {
        let missing = want.minus(bits(&have));
        if missing.is_empty() {
            tracing::debug!(cluster = %info.id, rounds, elapsed = ?start.elapsed(), "cluster complete");
            return Ok(have);
        }
        let t0 = Instant::now();
        // The registry may hold the round; never past our deadline.
        if let Some(d) = deadline {
            s.hold_at_most(Some(d.saturating_duration_since(t0)));
        }
        let reply = s.get_members(&info.id, missing).await?;
        rounds += 1;
        let round_time = t0.elapsed();
        let mut new = 0usize;
        for m in reply.members {
            // Tokens we did not ask for (a confused registry) are ignored.
            if missing.contains(m.index) {
                have.insert(m.index, m);
                new += 1;
            }
        }
        if want.minus(bits(&have)).is_empty() {
            continue;
        }
        match deadline {
            None => {
                let found_self = have.values().any(|m| m.id == self_id);
                let more_may_come = new > 0 && (round_time < QUICK_ROUND || !found_self);
                if !more_may_come {
                    return Ok(have);
                }
            }
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(ClientError::IncompleteCluster {
                        cluster: match cluster {
                            ClusterRef::Name(n) => format!("{n:?}"),
                            ClusterRef::Id(_) => info.id.to_hex(),
                        },
                        have: have.len(),
                        want: info.max_size as usize,
                        missing: want.minus(bits(&have)).iter().collect(),
                        waited: start.elapsed(),
                    });
                }
                if new > 0 {
                    backoff = opts.backoff_start;
                } else if round_time < QUICK_ROUND {
                    tokio::time::sleep(backoff.min(d - now)).await;
                    backoff = backoff.saturating_mul(2).min(opts.backoff_max);
                }
            }
        }
    }
}

/// Read a cluster's members without joining it: Member (with `reader`,
/// attrs SOLO|EPHEMERAL), GetCluster rounds, Bye. An xlreg registry allows
/// this; a Go registry refuses GetCluster before a Join with
/// `invalid msg type for current state`.
///
/// With length-prefixed framing one round returns every member present.
/// With legacy framing a registry caps each reply near 16 KiB (about 24
/// members with 2048-bit keys), so rounds ask for the still-missing indexes
/// until one brings nothing new.
pub async fn read_members(
    regcred: &RegCred,
    cluster_id: &NodeId,
    reader: &NodeIdentity,
    opts: &ClientOptions,
) -> Result<MemberList, ClientError> {
    read_cluster(regcred, &ClusterRef::Id(*cluster_id), reader, opts).await
}

/// [`read_members`] for a cluster given by ID or by name (by name needs an
/// xlreg registry: the lookup is an extension of GetCluster).
pub async fn read_cluster(
    regcred: &RegCred,
    cluster: &ClusterRef,
    reader: &NodeIdentity,
    opts: &ClientOptions,
) -> Result<MemberList, ClientError> {
    // Read-only: safe to run again on another server.
    failing_over(regcred, opts, "read", |s| read_session(s, cluster, reader)).await
}

async fn read_session(
    mut s: Session,
    cluster: &ClusterRef,
    reader: &NodeIdentity,
) -> Result<MemberList, ClientError> {
    let r = async {
        s.register(reader, attrs::SOLO | attrs::EPHEMERAL).await?;
        // A read lists who is there; it never waits for more.
        s.answer_at_once(true);
        let mut have: BTreeMap<usize, MemberInfo> = BTreeMap::new();
        let mut id = cluster.id();
        loop {
            let missing = Which::ALL.minus(bits(&have));
            let reply = match (id, cluster) {
                (Some(id), _) => s.get_members(&id, missing).await?,
                (None, ClusterRef::Name(name)) => {
                    let (found, reply) = s.get_members_named(name, missing).await?;
                    id = Some(found);
                    reply
                }
                (None, ClusterRef::Id(_)) => unreachable!("an ID reference has an ID"),
            };
            let mut new = 0usize;
            for m in reply.members {
                if missing.contains(m.index) {
                    have.insert(m.index, m);
                    new += 1;
                }
            }
            if new == 0 || s.framing() == Framing::LengthPrefixed || have.len() >= 64 {
                return Ok::<_, ClientError>((id.expect("set by the first reply"), have));
            }
        }
    }
    .await;
    let _ = s.bye().await;
    let (cluster_id, have) = r?;
    Ok(MemberList {
        cluster_id,
        members: have.into_values().collect(),
    })
}

/// The identity to read clusters with ([`read_cluster`],
/// [`read_members`]): made once per process and shared, so only the first
/// read pays for key generation.
///
/// What a reader's identity should be: a reader registers SOLO|EPHEMERAL
/// for the one session of its read, joins nothing, and no peer ever uses
/// its keys, so any valid identity will do and nothing about it needs to
/// last. This one is named `reader`, has no endpoints and keys of
/// [`READER_KEY_BITS`] (the smallest a registry accepts), which makes it
/// cheap to generate. A program that reads as a member it already has may
/// pass that member's identity instead.
pub async fn reader_identity() -> Result<NodeIdentity, ClientError> {
    static READER: tokio::sync::OnceCell<NodeIdentity> = tokio::sync::OnceCell::const_new();
    READER
        .get_or_try_init(|| generate_blocking(reader_options()))
        .await
        .cloned()
}

/// Modulus size of [`reader_identity`]'s keys, bits.
pub const READER_KEY_BITS: u32 = crate::wire::MIN_MODULUS_BITS;

/// The options [`reader_identity`] generates with (a CLI that keeps a
/// reader identity on disk uses the same).
pub fn reader_options() -> NodeOptions {
    NodeOptions {
        name: Some("reader".into()),
        endpoints: None,
        key_bits: READER_KEY_BITS,
    }
}

/// A fresh in-memory identity (for a throw-away member), generated off the
/// async threads. To read clusters, [`reader_identity`] is cheaper.
pub async fn ephemeral_identity(opts: NodeOptions) -> Result<NodeIdentity, ClientError> {
    generate_blocking(opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_first_starts_after_the_failed_server() {
        let e: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(next_first(&e, Some("a")), ["b", "c", "a"]);
        assert_eq!(next_first(&e, Some("c")), ["a", "b", "c"]);
        assert_eq!(next_first(&e, Some("zz")), ["b", "c", "a"]);
        assert_eq!(next_first(&e[..1], Some("a")), ["a"]);
    }
    use crate::client::fake::{self, Cluster};
    use std::sync::{Arc, Mutex};

    use fake::node;

    fn opts(wait_ms: Option<u64>) -> BootOptions {
        BootOptions {
            wait: wait_ms.map(Duration::from_millis),
            ..BootOptions::default()
        }
    }

    async fn fake_cluster(
        go: bool,
        max_size: u32,
        cap: usize,
        present: usize,
    ) -> (RegCred, Arc<Mutex<Cluster>>) {
        let c = Arc::new(Mutex::new(Cluster {
            members: (0..present).map(fake::member_token).collect(),
            max_size,
            cap,
            gets: 0,
        }));
        let c2 = c.clone();
        let rc = fake::start(go, move || fake::cluster_handler(c2.clone())).await;
        (rc, c)
    }

    #[tokio::test]
    async fn boot_gathers_capped_replies_from_a_go_style_registry() {
        // 9 present + us = 10 of 10, at most 3 tokens per reply.
        let (rc, c) = fake_cluster(true, 10, 3, 9).await;
        let me = node("me");
        let v = boot(
            &rc,
            &ClusterRef::Id(fake::cluster_id()),
            &me,
            &opts(Some(5000)),
        )
        .await
        .unwrap();
        assert!(v.is_complete());
        assert_eq!(v.self_index, 9);
        assert_eq!(v.self_member().unwrap().id, me.id);
        assert_eq!(
            v.members.iter().map(|m| m.index).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(c.lock().unwrap().gets, 4, "ceil(10/3) rounds");
    }

    #[tokio::test]
    async fn boot_waits_with_backoff_for_late_members() {
        let (rc, c) = fake_cluster(true, 4, 0, 1).await;
        let c2 = c.clone();
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut g = c2.lock().unwrap();
            g.members.push(fake::member_token(50));
            g.members.push(fake::member_token(51));
        });
        let t0 = std::time::Instant::now();
        let v = boot(
            &rc,
            &ClusterRef::Id(fake::cluster_id()),
            &node("me"),
            &opts(Some(5000)),
        )
        .await
        .unwrap();
        late.await.unwrap();
        assert!(v.is_complete());
        assert_eq!(v.self_index, 1);
        assert!(t0.elapsed() >= Duration::from_millis(300));
        // Backoff 20, 40, 80, 160, … ms: a handful of polls, not hundreds.
        let gets = c.lock().unwrap().gets;
        assert!((2..=10).contains(&gets), "{gets} GetCluster rounds");
    }

    #[tokio::test]
    async fn incomplete_cluster_at_the_deadline_is_an_error_saying_how_many() {
        let (rc, _) = fake_cluster(false, 5, 0, 2).await;
        let t0 = std::time::Instant::now();
        let e = boot(
            &rc,
            &ClusterRef::Id(fake::cluster_id()),
            &node("me"),
            &opts(Some(400)),
        )
        .await
        .unwrap_err();
        match &e {
            ClientError::IncompleteCluster { have, want, .. } => {
                assert_eq!((*have, *want), (3, 5));
            }
            other => panic!("expected IncompleteCluster, got {other:?}"),
        }
        assert!(e.to_string().contains("3 of 5"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn wait_zero_returns_members_known_right_after_the_join() {
        let (rc, c) = fake_cluster(true, 8, 2, 3).await;
        let v = boot(
            &rc,
            &ClusterRef::Id(fake::cluster_id()),
            &node("me"),
            &opts(None),
        )
        .await
        .unwrap();
        assert!(!v.is_complete());
        assert_eq!(v.members.len(), 4);
        assert_eq!(v.self_index, 3);
        assert!(c.lock().unwrap().gets <= 3);
    }

    #[tokio::test]
    async fn read_members_keeps_asking_while_capped_legacy_replies_bring_more() {
        let (rc, c) = fake_cluster(true, 10, 3, 10).await;
        let list = read_members(
            &rc,
            &fake::cluster_id(),
            &node("r"),
            &ClientOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            list.members.iter().map(|m| m.index).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(c.lock().unwrap().gets, 5, "4 capped rounds + 1 empty");
    }

    #[tokio::test]
    async fn join_reply_for_another_cluster_is_rejected() {
        let (rc, _) = fake_cluster(true, 2, 0, 1).await;
        let other = NodeId::from_bytes(&[0x77; 20]).unwrap();
        let e = boot(&rc, &ClusterRef::Id(other), &node("me"), &opts(Some(1000)))
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::BadReply(_)), "{e:?}");
    }
}
