//! Clusters that change, from the client side: resize a cluster, evict a
//! member, leave, and watch the cluster's membership change (issue 23).
//!
//! Why a file of its own: these are negotiated xlreg extensions (ops
//! 15–18, fields 41 `cluster_version` and 42 `member_index`), sent only on
//! sessions that negotiated the xlreg framing with an xlreg registry. A Go
//! registry never sees them: asking one is a local
//! [`ClientError::Usage`] naming the registry, and nothing is sent. Keeping
//! them apart from `session` keeps the Go-compatible core of the client
//! free of them.
//!
//! A cluster's members hold stable slots (`0..max_size`); an evicted or
//! departed member leaves a hole that the next Join fills (the lowest free
//! slot), so the other members keep their indexes. Every committed change
//! gives the cluster a new version (1 at creation); [`Watch`] yields each
//! new version as a [`ClusterView`], with a held request per change
//! (no polling), until the cluster is deleted.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio::time::Instant;

use super::connection::ClientOptions;
use super::node::{attrs, NodeIdentity};
use super::session::{naming, parse_members, ClusterRef, Session, State};
use super::view::{ClusterView, MemberInfo};
use super::ClientError;
use crate::limits;
use crate::regcred::RegCred;
use crate::wire::{Evictee, Framing, NodeId, Tag, XlRegMsg};

/// A member of a cluster, by name or by slot index.
///
/// Parsing (`"beta".parse()`, or `xlreg admin evict NAME MEMBER`): all
/// digits is a slot index, anything else a member name.
///
/// ```
/// use xlreg::client::MemberRef;
/// assert_eq!("3".parse::<MemberRef>().unwrap(), MemberRef::Index(3));
/// assert_eq!("m03".parse::<MemberRef>().unwrap(), MemberRef::Name("m03".into()));
/// assert!("".parse::<MemberRef>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemberRef {
    /// The member with this name (names are unique within a cluster).
    Name(String),
    /// The member in this slot (its index in the cluster, 0-based).
    Index(usize),
}

impl FromStr for MemberRef {
    type Err = ClientError;
    /// All ASCII digits: a slot index; anything else but the empty string:
    /// a name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ClientError::Usage(
                "a member is given by its name or its slot index, not an empty string".into(),
            ));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse::<usize>().map(MemberRef::Index).map_err(|_| {
                ClientError::Usage(format!(
                    "member slot {s} is out of range (a cluster has at most {} slots)",
                    limits::MAX_CLUSTER_SIZE
                ))
            });
        }
        Ok(MemberRef::Name(s.to_string()))
    }
}

impl fmt::Display for MemberRef {
    /// `member "beta"` or `slot 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberRef::Name(n) => write!(f, "member {n:?}"),
            MemberRef::Index(i) => write!(f, "slot {i}"),
        }
    }
}

/// The states in which a session may send the change ops: once registered
/// (as the cluster's creator, a member, or a reader), before or after a
/// Create or Join.
const REGISTERED: &[State] = &[State::Registered, State::Created, State::Joined];

/// The (ID, name) arguments of the wire constructors for `cluster`.
fn target(cluster: &ClusterRef) -> (Option<&NodeId>, &str) {
    match cluster {
        ClusterRef::Id(id) => (Some(id), ""),
        ClusterRef::Name(n) => (None, n),
    }
}

impl Session {
    /// Refuse, before sending anything, an extension this session cannot
    /// carry: `what` names it (`resize clusters`).
    fn extension(&self, what: &str) -> Result<(), ClientError> {
        if self.framing() == Framing::LengthPrefixed {
            return Ok(());
        }
        let v = self.server_version();
        // A client that proposed the Go version hears 1.9.24 from any
        // registry: then the choice of framing was ours.
        let ours = self.proposed_version().major() < crate::wire::EXT_VERSION.major();
        if !ours {
            Err(ClientError::Usage(format!(
                "the registry at {} is a Go registry (version {v}); it cannot {what}",
                self.addr()
            )))
        } else {
            Err(ClientError::Usage(format!(
                "this session with the registry at {} uses the Go framing \
                 (ClientOptions::legacy_framing); it cannot {what}",
                self.addr()
            )))
        }
    }

    /// Send a change (Resize, Evict, Leave) and return the cluster version
    /// from its Ack.
    async fn change(
        &mut self,
        msg: XlRegMsg,
        request: &'static str,
        cluster: &ClusterRef,
    ) -> Result<u64, ClientError> {
        let reply = self
            .call(msg, request, Tag::Ack)
            .await
            .map_err(|e| naming(e, cluster))?;
        let r = reply.cluster_version.ok_or_else(|| {
            ClientError::BadReply(format!("the Ack to {request} carries no cluster version"))
        });
        self.checked(r)
    }

    /// Resize `cluster` to `size` members (op 15, an xlreg extension) and
    /// return its version after the change. Allowed to the cluster's
    /// creator (register as that identity first) and to the registry's
    /// operator. Growing always works; shrinking only when every slot from
    /// `size` up is empty (the registry's refusal names the member in the
    /// way: evict it first). The same size changes nothing and returns the
    /// current version.
    ///
    /// A size outside 2..=64 is refused locally; so is a Go registry (or a
    /// session with the Go framing), and nothing is sent.
    pub async fn resize(&mut self, cluster: &ClusterRef, size: u32) -> Result<u64, ClientError> {
        limits::check_cluster_size(size)
            .map_err(|e| ClientError::Usage(format!("resizing cluster {cluster}: {e}")))?;
        self.extension("resize clusters")?;
        self.require("Resize", REGISTERED)?;
        let (id, name) = target(cluster);
        let msg = XlRegMsg::resize(id, name, size);
        self.change(msg, "Resize", cluster).await
    }

    /// Evict `member` from `cluster` (op 16, an xlreg extension) and return
    /// the cluster's version after the change. Allowed to the cluster's
    /// creator and to the operator. The slot becomes free for the next
    /// Join; the other members keep theirs. The evicted node stays
    /// registered and may join again.
    pub async fn evict(
        &mut self,
        cluster: &ClusterRef,
        member: &MemberRef,
    ) -> Result<u64, ClientError> {
        self.extension("evict members")?;
        self.require("Evict", REGISTERED)?;
        let who = match member {
            MemberRef::Name(n) => Evictee::Name(n),
            MemberRef::Index(i) => Evictee::Index(u32::try_from(*i).map_err(|_| {
                ClientError::Usage(format!(
                    "evicting {member} of cluster {cluster}: no such slot"
                ))
            })?),
        };
        let (id, name) = target(cluster);
        let msg = XlRegMsg::evict(id, name, who);
        self.change(msg, "Evict", cluster).await
    }

    /// Leave `cluster` (op 17, an xlreg extension): the member this session
    /// registered gives up its slot. Returns the cluster's version after
    /// the change. A node that is not a member is refused (`not a member of
    /// this cluster`).
    pub async fn leave(&mut self, cluster: &ClusterRef) -> Result<u64, ClientError> {
        self.extension("take a member's leave")?;
        self.require("Leave", REGISTERED)?;
        let (id, name) = target(cluster);
        self.change(XlRegMsg::leave(id, name), "Leave", cluster)
            .await
    }

    /// Wait for `cluster` to change past version `since` (op 18, an xlreg
    /// extension): the registry holds the request until the cluster's
    /// version is greater (then the view is `Some`) or its hold passes
    /// with no change (`None`; ask again). `since` 0 answers at once with
    /// the current view. [`Session::hold_at_most`] bounds the hold.
    ///
    /// The view lists the occupied slots (holes where members left), its
    /// version and size; its `self_index` is this session's member when it
    /// is one, else [`ClusterView::NOT_A_MEMBER`]. A deleted or expired
    /// cluster is the registry's Error (`cannot find cluster …`);
    /// [`Watch`] turns that into the end of its stream.
    pub async fn watch_next(
        &mut self,
        cluster: &ClusterRef,
        since: u64,
    ) -> Result<Option<ClusterView>, ClientError> {
        self.extension("watch clusters")?;
        self.require("Watch", REGISTERED)?;
        let (id, name) = target(cluster);
        // No hold of our own: the registry's bound.
        let msg = XlRegMsg {
            hold_ms: self.hold_ms(),
            ..XlRegMsg::watch(id, name, since, 0)
        };
        let reply = self
            .call(msg, "Watch", Tag::ClusterMembers)
            .await
            .map_err(|e| naming(e, cluster))?;
        let view = watch_view(&reply, cluster, self.member_id());
        let view = self.checked(view)?;
        Ok((view.version > since).then_some(view))
    }
}

/// The view in a ClusterMembers answering Watch.
fn watch_view(
    reply: &XlRegMsg,
    cluster: &ClusterRef,
    me: Option<NodeId>,
) -> Result<ClusterView, ClientError> {
    let bad = |why: String| ClientError::BadReply(format!("the answer to Watch: {why}"));
    let id = reply
        .cluster_id
        .as_deref()
        .ok_or_else(|| bad("no cluster ID".into()))?;
    let id = NodeId::from_bytes(id).map_err(|e| bad(format!("cluster ID: {e}")))?;
    if let ClusterRef::Id(want) = cluster {
        if *want != id {
            return Err(bad(format!("cluster {id} in reply to a watch of {want}")));
        }
    }
    let max_size = reply.cluster_max_size.unwrap_or(0);
    if !(1..=limits::MAX_CLUSTER_SIZE).contains(&max_size) {
        return Err(bad(format!(
            "cluster max size {max_size} is not in 1..={}",
            limits::MAX_CLUSTER_SIZE
        )));
    }
    let version = reply
        .cluster_version
        .filter(|&v| v > 0)
        .ok_or_else(|| bad("no cluster version".into()))?;
    let members = parse_members(reply, &id)?.members;
    let self_index = me
        .and_then(|me| members.iter().find(|m| m.id == me))
        .map_or(ClusterView::NOT_A_MEMBER, |m| m.index);
    Ok(ClusterView {
        cluster_id: id,
        cluster_name: match cluster {
            ClusterRef::Name(n) => Some(n.clone()),
            ClusterRef::Id(_) => None,
        },
        max_size,
        endpoint_count: reply.end_point_count.unwrap_or(0),
        attrs: reply.cluster_attrs.unwrap_or(0),
        self_index,
        members,
        version,
    })
}

/// Is this the registry saying the cluster does not exist (any more)?
/// xlreg's `cannot find cluster with this ID` / `… with this name`, and
/// the GetCluster form `doGetMsg: can't find cluster with ID …`.
pub(crate) fn is_gone(e: &ClientError) -> bool {
    e.server_text().is_some_and(|t| {
        t.starts_with("cannot find cluster") || t.starts_with("doGetMsg: can't find cluster")
    })
}

/// One change between two views of a cluster (what `xlreg members
/// --watch` prints), from [`ClusterView::changes_from`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewChange {
    /// The cluster's size changed.
    Resized {
        /// Size before.
        from: u32,
        /// Size after.
        to: u32,
    },
    /// A member took a slot that was empty.
    Joined(MemberInfo),
    /// A slot's member is gone (it left or was evicted).
    Left(MemberInfo),
    /// A slot's member was replaced by another node.
    Replaced {
        /// The member that held the slot.
        old: MemberInfo,
        /// The member that holds it now.
        new: MemberInfo,
    },
    /// The same member re-joined its slot with another token (e.g. new
    /// endpoints).
    Rejoined(MemberInfo),
}

impl fmt::Display for ViewChange {
    /// `size 3 -> 5`, `slot 3: m03 joined (…id…)`, `slot 1: m01 left`,
    /// `slot 1: m01 replaced by m05 (…id…)`, `slot 2: m02 re-joined`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewChange::Resized { from, to } => write!(f, "size {from} -> {to}"),
            ViewChange::Joined(m) => write!(f, "slot {}: {} joined ({})", m.index, m.name, m.id),
            ViewChange::Left(m) => write!(f, "slot {}: {} left ({})", m.index, m.name, m.id),
            ViewChange::Replaced { old, new } => write!(
                f,
                "slot {}: {} replaced by {} ({})",
                new.index, old.name, new.name, new.id
            ),
            ViewChange::Rejoined(m) => write!(
                f,
                "slot {}: {} re-joined (endpoints {})",
                m.index,
                m.name,
                m.endpoints.join(",")
            ),
        }
    }
}

impl ClusterView {
    /// What changed from `prev` (an earlier view of the same cluster) to
    /// this one: a resize first, then slot by slot, ascending.
    pub fn changes_from(&self, prev: &ClusterView) -> Vec<ViewChange> {
        let mut out = Vec::new();
        if prev.max_size != self.max_size {
            out.push(ViewChange::Resized {
                from: prev.max_size,
                to: self.max_size,
            });
        }
        let slots = prev
            .members
            .iter()
            .chain(&self.members)
            .map(|m| m.index)
            .collect::<std::collections::BTreeSet<_>>();
        for i in slots {
            match (prev.member(i), self.member(i)) {
                (None, Some(new)) => out.push(ViewChange::Joined(new.clone())),
                (Some(old), None) => out.push(ViewChange::Left(old.clone())),
                (Some(old), Some(new)) if old.id != new.id => out.push(ViewChange::Replaced {
                    old: old.clone(),
                    new: new.clone(),
                }),
                (Some(old), Some(new)) if old != new => out.push(ViewChange::Rejoined(new.clone())),
                _ => {}
            }
        }
        out
    }
}

/// A stream of a cluster's versions: each call of [`Watch::next`] waits
/// (with held Watch requests, re-issued when a hold passes with no change)
/// until the cluster's version is greater than the last one yielded, and
/// yields the cluster at that version. Versions come in ascending order;
/// changes that land while no request is held are seen together, as the
/// latest version. The stream ends (`None`) when the cluster is deleted or
/// expires.
///
/// The watcher registers with its own identity: a member's (then views
/// have its `self_index`) or a reader's ([`reader_identity`](super::reader_identity)).
/// One session is kept open between requests; if it breaks, the next
/// request opens another once (a regCred listing several servers fails
/// over), and a second failure in a row ends the stream with the error.
///
/// ```no_run
/// # async fn f(rc: xlreg::regcred::RegCred) -> Result<(), xlreg::client::ClientError> {
/// use xlreg::client::{reader_identity, ClientOptions, ClusterRef, Watch};
/// let mut watch = Watch::new(&rc, ClusterRef::Name("demo".into()),
///                            reader_identity().await?, ClientOptions::default());
/// let mut last = None;
/// while let Some(view) = watch.next().await {
///     let view = view?;
///     if let Some(prev) = &last {
///         for change in view.changes_from(prev) {
///             println!("version {}: {change}", view.version());
///         }
///     }
///     last = Some(view);
/// }
/// println!("the cluster was deleted");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Watch {
    regcred: RegCred,
    cluster: ClusterRef,
    watcher: NodeIdentity,
    opts: ClientOptions,
    hold: Option<Duration>,
    session: Option<Session>,
    version: u64,
    /// What the registry's answer does not carry, from a seed view.
    seed: Option<(Option<String>, u32, u64)>,
    ended: bool,
    /// A request is in flight on `session`: set while [`Watch::next`]
    /// awaits it, so a `next` that was dropped half-way (a timeout, a
    /// cancelled task) leaves a session whose reply is still due, which
    /// the next call replaces instead of reading that stale reply.
    in_flight: bool,
}

/// An answer with no change that came back faster than this was not held
/// (a registry run with `--hold-ms 0`): wait this long before asking again.
const UNHELD_PAUSE: Duration = Duration::from_millis(50);

impl Watch {
    /// Watch `cluster` as `watcher` from its current version: the first
    /// [`next`](Self::next) returns the cluster as it is now.
    pub fn new(
        regcred: &RegCred,
        cluster: ClusterRef,
        watcher: NodeIdentity,
        opts: ClientOptions,
    ) -> Self {
        Watch {
            regcred: regcred.clone(),
            cluster,
            watcher,
            opts,
            hold: None,
            session: None,
            version: 0,
            seed: None,
            ended: false,
            in_flight: false,
        }
    }

    /// Yield only versions greater than `version` (one already known).
    pub fn since(mut self, version: u64) -> Self {
        self.version = version;
        self
    }

    /// Continue from `view` (e.g. the one a member booted with): versions
    /// after its own, keeping its cluster name, endpoint count and
    /// attributes in later views. A view with version 0 (from a boot) makes
    /// the first [`next`](Self::next) return the current view at once.
    pub fn after(mut self, view: &ClusterView) -> Self {
        self.version = view.version;
        self.seed = Some((view.cluster_name.clone(), view.endpoint_count, view.attrs));
        self
    }

    /// Hold each request at most `cap` (`None`: the registry's bound, 1 s
    /// by default). Shorter holds mean more requests, not faster news.
    pub fn hold_at_most(mut self, cap: Option<Duration>) -> Self {
        self.hold = cap;
        self
    }

    /// The last version yielded (or given to [`since`](Self::since)).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The cluster watched.
    pub fn cluster(&self) -> &ClusterRef {
        &self.cluster
    }

    /// The next version of the cluster: `Some(Ok(view))`, `None` once the
    /// cluster is gone (deleted or expired, after at least one version was
    /// seen or given), or `Some(Err(_))` when watching failed (then the
    /// stream is over). A cluster that does not exist when the watch
    /// starts is an error (`cannot find cluster …`), not an empty stream.
    ///
    /// Cancel-safe: dropping the future (e.g. under `tokio::time::timeout`)
    /// loses nothing; the next call asks again on a fresh session.
    pub async fn next(&mut self) -> Option<Result<ClusterView, ClientError>> {
        if self.ended {
            return None;
        }
        if self.in_flight {
            self.session = None;
        }
        let mut retried = false;
        loop {
            let t0 = Instant::now();
            self.in_flight = true;
            let r = match self.session.as_mut() {
                Some(s) => s.watch_next(&self.cluster, self.version).await,
                None => match self.open().await {
                    Ok(mut s) => {
                        let r = s.watch_next(&self.cluster, self.version).await;
                        self.session = Some(s);
                        r
                    }
                    Err(e) => Err(e),
                },
            };
            self.in_flight = false;
            match r {
                Ok(Some(mut view)) => {
                    if let Some((name, endpoints, attrs)) = &self.seed {
                        view.cluster_name = view.cluster_name.or_else(|| name.clone());
                        if view.endpoint_count == 0 {
                            view.endpoint_count = *endpoints;
                        }
                        if view.attrs == 0 {
                            view.attrs = *attrs;
                        }
                    }
                    self.version = view.version;
                    return Some(Ok(view));
                }
                Ok(None) => {
                    retried = false;
                    if t0.elapsed() < UNHELD_PAUSE {
                        tokio::time::sleep(UNHELD_PAUSE).await;
                    }
                }
                Err(e) if is_gone(&e) && self.version > 0 => {
                    self.finish().await;
                    return None;
                }
                Err(e) if e.is_failover() && !retried => {
                    tracing::debug!(
                        "watch of cluster {}: {}; opening a new session",
                        self.cluster,
                        crate::ErrorChain(&e)
                    );
                    retried = true;
                    self.session = None;
                }
                Err(e) => {
                    self.finish().await;
                    return Some(Err(e));
                }
            }
        }
    }

    async fn open(&self) -> Result<Session, ClientError> {
        let mut s = Session::connect(&self.regcred, &self.opts).await?;
        s.register(&self.watcher, attrs::SOLO | attrs::EPHEMERAL)
            .await?;
        s.hold_at_most(self.hold);
        Ok(s)
    }

    async fn finish(&mut self) {
        self.ended = true;
        if let Some(s) = self.session.take() {
            let _ = s.bye().await;
        }
    }

    /// End the watch: say Bye on the open session, if any.
    pub async fn close(mut self) {
        self.finish().await;
    }
}

/// Resize `cluster` to `size` members as `owner` (the identity that
/// created it) in one session: Member, Resize, Bye. Returns the cluster's
/// version after the change. See [`Session::resize`].
pub async fn resize(
    regcred: &RegCred,
    cluster: &ClusterRef,
    size: u32,
    owner: &NodeIdentity,
    opts: &ClientOptions,
) -> Result<u64, ClientError> {
    let mut s = registered(regcred, owner, opts).await?;
    let v = s.resize(cluster, size).await?;
    s.bye().await?;
    Ok(v)
}

/// Evict `member` from `cluster` as `owner` (the identity that created it)
/// in one session. Returns the cluster's version after the change. See
/// [`Session::evict`].
pub async fn evict(
    regcred: &RegCred,
    cluster: &ClusterRef,
    member: &MemberRef,
    owner: &NodeIdentity,
    opts: &ClientOptions,
) -> Result<u64, ClientError> {
    let mut s = registered(regcred, owner, opts).await?;
    let v = s.evict(cluster, member).await?;
    s.bye().await?;
    Ok(v)
}

/// `node` leaves `cluster` (its slot becomes free) in one session.
/// Returns the cluster's version after the change. See [`Session::leave`].
pub async fn leave(
    regcred: &RegCred,
    cluster: &ClusterRef,
    node: &NodeIdentity,
    opts: &ClientOptions,
) -> Result<u64, ClientError> {
    let mut s = registered(regcred, node, opts).await?;
    let v = s.leave(cluster).await?;
    s.bye().await?;
    Ok(v)
}

/// A session registered as `node`, for one change. The change is not run
/// again on another server of a group: one that was applied but whose
/// answer was lost would be refused the second time (the member is gone).
async fn registered(
    regcred: &RegCred,
    node: &NodeIdentity,
    opts: &ClientOptions,
) -> Result<Session, ClientError> {
    let mut s = Session::connect(regcred, opts).await?;
    s.register(node, attrs::SOLO).await?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fake::{self, Action};
    use crate::wire::Which;
    use std::sync::{Arc, Mutex};

    use fake::node;

    #[test]
    fn member_refs_parse_digits_as_slots_and_the_rest_as_names() {
        assert_eq!("0".parse::<MemberRef>().unwrap(), MemberRef::Index(0));
        assert_eq!("12".parse::<MemberRef>().unwrap(), MemberRef::Index(12));
        assert_eq!(
            "m1".parse::<MemberRef>().unwrap(),
            MemberRef::Name("m1".into())
        );
        assert_eq!(
            "-1".parse::<MemberRef>().unwrap(),
            MemberRef::Name("-1".into())
        );
        let e = "".parse::<MemberRef>().unwrap_err().to_string();
        assert!(e.contains("name or its slot index"), "{e}");
        let e = "99999999999999999999999"
            .parse::<MemberRef>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range"), "{e}");
        assert_eq!(MemberRef::Index(3).to_string(), "slot 3");
        assert_eq!(MemberRef::Name("b".into()).to_string(), "member \"b\"");
    }

    /// A fake registry that records the ops it received and answers the
    /// change ops from `state` (`None`: the cluster is gone).
    /// (version, size, (slot, fake member) present).
    type State = Option<(u64, u32, Vec<(usize, usize)>)>;

    struct Fake {
        ops: Vec<Tag>,
        state: State,
        ack_version: bool,
    }

    async fn start(go: bool, fake: Arc<Mutex<Fake>>) -> RegCred {
        fake::start(go, move || {
            let f = fake.clone();
            move |m: &XlRegMsg| {
                let mut f = f.lock().unwrap();
                let tag = m.tag().unwrap();
                f.ops.push(tag);
                match tag {
                    Tag::Member => {
                        let id = m.member_specs.as_ref().unwrap().id.clone().unwrap();
                        Action::Reply(XlRegMsg::member_ok(&NodeId::from_bytes(&id).unwrap(), 0))
                    }
                    Tag::Bye => Action::Reply(XlRegMsg::ack()),
                    Tag::Resize | Tag::Evict | Tag::Leave => Action::Reply(XlRegMsg {
                        cluster_version: f.ack_version.then_some(7),
                        ..XlRegMsg::ack()
                    }),
                    Tag::Watch => match &f.state {
                        None => {
                            Action::Reply(XlRegMsg::error("cannot find cluster with this name"))
                        }
                        Some((v, size, slots)) => {
                            let mut which = Which(0);
                            let mut tokens = vec![];
                            for (slot, who) in slots {
                                which.insert(*slot);
                                tokens.push(fake::member_token(*who));
                            }
                            Action::Reply(XlRegMsg {
                                cluster_max_size: Some(*size),
                                cluster_version: Some(*v),
                                ..XlRegMsg::cluster_members(
                                    fake::cluster_id().as_bytes(),
                                    which,
                                    tokens,
                                )
                            })
                        }
                    },
                    _ => Action::Reply(XlRegMsg::error("invalid msg type for current state")),
                }
            }
        })
        .await
    }

    fn fake_state(state: State) -> Arc<Mutex<Fake>> {
        Arc::new(Mutex::new(Fake {
            ops: vec![],
            state,
            ack_version: true,
        }))
    }

    fn demo() -> ClusterRef {
        ClusterRef::Name("demo".into())
    }

    #[tokio::test]
    async fn a_go_registry_is_never_sent_the_change_ops() {
        let f = fake_state(None);
        let rc = start(true, f.clone()).await;
        let me = node("me");
        let mut s = Session::connect(&rc, &ClientOptions::default())
            .await
            .unwrap();
        s.register(&me, 0).await.unwrap();
        let addr = s.addr().to_string();
        let e = s.resize(&demo(), 5).await.unwrap_err();
        assert!(matches!(e, ClientError::Usage(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("the registry at {addr} is a Go registry (version 1.9.24); it cannot resize clusters")
        );
        let e = s.evict(&demo(), &MemberRef::Index(1)).await.unwrap_err();
        assert!(e.to_string().ends_with("it cannot evict members"), "{e}");
        let e = s.leave(&demo()).await.unwrap_err();
        assert!(e.to_string().contains("is a Go registry"), "{e}");
        let e = s.watch_next(&demo(), 0).await.unwrap_err();
        assert!(e.to_string().ends_with("it cannot watch clusters"), "{e}");
        // Nothing was sent, and the session is still usable.
        s.bye().await.unwrap();
        assert_eq!(f.lock().unwrap().ops, [Tag::Member, Tag::Bye]);
    }

    #[tokio::test]
    async fn legacy_framing_with_an_xlreg_registry_is_refused_locally_too() {
        let f = fake_state(None);
        let rc = start(false, f.clone()).await;
        let opts = ClientOptions {
            legacy_framing: true,
            ..ClientOptions::default()
        };
        let e = resize(&rc, &demo(), 4, &node("me"), &opts)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("uses the Go framing"), "{e}");
        assert!(e.to_string().ends_with("it cannot resize clusters"), "{e}");
        assert!(!f.lock().unwrap().ops.contains(&Tag::Resize));
    }

    #[tokio::test]
    async fn changes_return_the_version_of_the_ack_and_send_what_they_name() {
        let f = fake_state(None);
        let rc = start(false, f.clone()).await;
        let o = ClientOptions::default();
        let me = node("me");
        assert_eq!(resize(&rc, &demo(), 5, &me, &o).await.unwrap(), 7);
        let slot = MemberRef::Index(1);
        assert_eq!(evict(&rc, &demo(), &slot, &me, &o).await.unwrap(), 7);
        assert_eq!(leave(&rc, &demo(), &me, &o).await.unwrap(), 7);
        let ops = f.lock().unwrap().ops.clone();
        for t in [Tag::Resize, Tag::Evict, Tag::Leave] {
            assert!(ops.contains(&t), "{t:?} not sent: {ops:?}");
        }
        // A size the registry would refuse is refused before connecting.
        let e = resize(&rc, &demo(), 65, &me, &o).await.unwrap_err();
        assert!(e.to_string().contains("size 65 is not in 2..=64"), "{e}");
        // An Ack without the version is a bad reply.
        f.lock().unwrap().ack_version = false;
        let e = leave(&rc, &demo(), &me, &o).await.unwrap_err();
        assert!(matches!(e, ClientError::BadReply(_)), "{e:?}");
        assert!(
            e.to_string().contains("Leave carries no cluster version"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_watch_yields_new_versions_in_order_and_ends_when_the_cluster_is_gone() {
        let f = fake_state(Some((1, 3, vec![(0, 0), (1, 1)])));
        let rc = start(false, f.clone()).await;
        let mut w = Watch::new(&rc, demo(), node("w"), ClientOptions::default());
        let v1 = w.next().await.unwrap().unwrap();
        assert_eq!((v1.version(), v1.max_size, v1.members.len()), (1, 3, 2));
        assert_eq!(v1.self_index, ClusterView::NOT_A_MEMBER);
        assert_eq!(v1.cluster_name.as_deref(), Some("demo"));
        // A next() given up half-way (no change yet) loses nothing.
        let cut = tokio::time::timeout(Duration::from_millis(120), w.next()).await;
        assert!(cut.is_err(), "no new version yet: {cut:?}");
        // The fake answers at once with no change: the watch asks again
        // (after a pause) until the version moves.
        let f2 = f.clone();
        let change = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            f2.lock().unwrap().state = Some((3, 5, vec![(0, 0), (1, 1), (2, 2)]));
        });
        let v3 = w.next().await.unwrap().unwrap();
        change.await.unwrap();
        assert_eq!((v3.version(), v3.max_size, v3.members.len()), (3, 5, 3));
        assert_eq!(w.version(), 3);
        let asked = f
            .lock()
            .unwrap()
            .ops
            .iter()
            .filter(|t| **t == Tag::Watch)
            .count();
        assert!(
            (3..=10).contains(&asked),
            "{asked} Watch requests in 200 ms"
        );
        assert_eq!(
            v3.changes_from(&v1),
            vec![
                ViewChange::Resized { from: 3, to: 5 },
                ViewChange::Joined(v3.member(2).unwrap().clone()),
            ]
        );
        f.lock().unwrap().state = None;
        assert!(w.next().await.is_none(), "a deleted cluster ends the watch");
        assert!(w.next().await.is_none());
    }

    #[tokio::test]
    async fn watching_a_cluster_that_does_not_exist_is_an_error_not_an_empty_stream() {
        let rc = start(false, fake_state(None)).await;
        let mut w = Watch::new(&rc, demo(), node("w"), ClientOptions::default());
        let e = w.next().await.unwrap().unwrap_err();
        assert_eq!(e.server_text(), Some("cannot find cluster with this name"));
        assert!(e.to_string().contains("of cluster \"demo\""), "{e}");
        assert!(w.next().await.is_none());
    }

    #[tokio::test]
    async fn a_watchers_own_slot_is_its_self_index() {
        let f = fake_state(Some((4, 2, vec![(0, 0), (1, 1)])));
        let rc = start(false, f).await;
        // The fake's member 1 token has the ID [1, 0, …, 0xee].
        let mut id = [0u8; 20];
        id[0] = 1;
        id[19] = 0xee;
        let (ck, sk) = fake::member_keys();
        let me = NodeIdentity::from_keys(
            "fake1",
            NodeId::from_bytes(&id).unwrap(),
            ck.clone(),
            sk.clone(),
            vec!["127.0.0.1:7001".into()],
        )
        .unwrap();
        let mut s = Session::connect(&rc, &ClientOptions::default())
            .await
            .unwrap();
        s.register(&me, 0).await.unwrap();
        let v = s.watch_next(&demo(), 0).await.unwrap().unwrap();
        assert_eq!(v.self_index, 1);
        assert_eq!(v.self_member().unwrap().name, "fake1");
        // Nothing newer than what we have: None.
        assert!(s.watch_next(&demo(), 4).await.unwrap().is_none());
    }

    #[test]
    fn a_watch_answer_for_another_cluster_or_without_a_version_is_bad() {
        let good = XlRegMsg {
            cluster_max_size: Some(3),
            cluster_version: Some(2),
            ..XlRegMsg::cluster_members(fake::cluster_id().as_bytes(), Which(0), vec![])
        };
        let by_id = ClusterRef::Id(fake::cluster_id());
        assert_eq!(watch_view(&good, &by_id, None).unwrap().version, 2);
        let other = ClusterRef::Id(NodeId::from_bytes(&[7; 20]).unwrap());
        let e = watch_view(&good, &other, None).unwrap_err().to_string();
        assert!(e.contains("in reply to a watch of 0707"), "{e}");
        let no_version = XlRegMsg {
            cluster_version: None,
            ..good.clone()
        };
        let e = watch_view(&no_version, &by_id, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no cluster version"), "{e}");
        let no_size = XlRegMsg {
            cluster_max_size: None,
            ..good
        };
        assert!(watch_view(&no_size, &by_id, None).is_err());
    }

    #[test]
    fn changes_between_views_name_each_slot() {
        let m = |slot: usize, who: usize| {
            MemberInfo::from_token(slot, &fake::member_token(who)).unwrap()
        };
        let view = |size, members: Vec<MemberInfo>| ClusterView {
            cluster_id: fake::cluster_id(),
            cluster_name: None,
            max_size: size,
            endpoint_count: 1,
            attrs: 0,
            self_index: ClusterView::NOT_A_MEMBER,
            members,
            version: 1,
        };
        let before = view(3, vec![m(0, 0), m(1, 1), m(2, 2)]);
        let mut moved = m(2, 2);
        moved.endpoints = vec!["127.0.0.1:1".into()];
        let after = view(4, vec![m(0, 0), m(1, 5), moved.clone(), m(3, 6)]);
        let c = after.changes_from(&before);
        assert_eq!(c.len(), 4, "{c:?}");
        assert_eq!(c[0].to_string(), "size 3 -> 4");
        assert_eq!(
            c[1].to_string(),
            format!("slot 1: fake1 replaced by fake5 ({})", m(1, 5).id)
        );
        assert_eq!(c[2], ViewChange::Rejoined(moved));
        assert_eq!(
            c[2].to_string(),
            "slot 2: fake2 re-joined (endpoints 127.0.0.1:1)"
        );
        assert_eq!(c[3], ViewChange::Joined(m(3, 6)));
        let gone = before.changes_from(&view(3, vec![m(0, 0), m(1, 1)]));
        assert_eq!(gone, vec![ViewChange::Joined(m(2, 2))]);
        let left = view(3, vec![m(0, 0)]).changes_from(&before);
        assert_eq!(left.len(), 2);
        assert!(
            left[0].to_string().starts_with("slot 1: fake1 left ("),
            "{}",
            left[0]
        );
        assert!(before.changes_from(&before).is_empty());
    }
}
