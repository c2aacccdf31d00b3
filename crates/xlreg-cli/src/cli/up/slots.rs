//! Slots in launch order: before `up -- CMD` starts any program, it joins
//! every member itself (with the identity it wrote to the member's node
//! directory), in launch order, so that member i holds slot i and
//! `XLREG_MEMBER_INDEX` is the slot. The program's own join later re-joins
//! that slot (a registry keeps a re-joining member's slot and replaces its
//! token). `up` marks its placeholder tokens with [`UP_RESERVED`]; it
//! knows a program has joined when the member's token no longer carries
//! the mark.

use std::time::Duration;

use tokio::time::Instant;
use xlreg::client::up_env::UP_RESERVED;
use xlreg::client::{
    attrs, ClientError, ClientOptions, ClusterRef, MemberInfo, NodeIdentity, Session,
};
use xlreg::regcred::RegCred;
use xlreg::wire::{NodeId, Which};

/// Join each node into `cluster` in order, marked as reserved by `up`.
pub(super) async fn reserve(
    regcred: &RegCred,
    cluster: NodeId,
    nodes: &[NodeIdentity],
    client: &ClientOptions,
) -> Result<(), ClientError> {
    for node in nodes {
        let mut s = Session::connect(regcred, client).await?;
        s.register(node, UP_RESERVED).await?;
        s.join(&ClusterRef::Id(cluster)).await?;
        let _ = s.bye().await;
    }
    Ok(())
}

/// Wait until the program of every slot in `slots` (slot, member name)
/// has joined (its token no longer carries [`UP_RESERVED`]), calling
/// `on_join` once per member; returns the members in the order of
/// `slots`, or [`ClientError::IncompleteCluster`] at `deadline`. Checks
/// that each slot holds the member named for it.
pub(super) async fn watch(
    regcred: &RegCred,
    cluster: NodeId,
    slots: &[(usize, String)],
    reader: &NodeIdentity,
    client: &ClientOptions,
    deadline: Instant,
    mut on_join: impl FnMut(&MemberInfo),
) -> Result<Vec<MemberInfo>, ClientError> {
    let start = Instant::now();
    let n = slots.len();
    let mut s = Session::connect(regcred, client).await?;
    let r = async {
        s.register(reader, attrs::SOLO | attrs::EPHEMERAL).await?;
        let mut have: Vec<Option<MemberInfo>> = vec![None; n];
        loop {
            let mut want = Which(0);
            for k in (0..n).filter(|&k| have[k].is_none()) {
                want.insert(slots[k].0);
            }
            if want.0 == 0 {
                return Ok(have.into_iter().flatten().collect());
            }
            if Instant::now() >= deadline {
                let missing: Vec<usize> = (0..n)
                    .filter(|&k| have[k].is_none())
                    .map(|k| slots[k].0)
                    .collect();
                return Err(ClientError::IncompleteCluster {
                    cluster: cluster.to_hex(),
                    have: n - missing.len(),
                    want: n,
                    missing,
                    waited: start.elapsed(),
                });
            }
            for m in s.get_members(&cluster, want).await?.members {
                let Some(k) = slots.iter().position(|(i, _)| *i == m.index) else {
                    continue;
                };
                if slots[k].1 != m.name {
                    return Err(ClientError::BadReply(format!(
                        "slot {} holds {:?}, up reserved it for {:?}",
                        m.index, m.name, slots[k].1
                    )));
                }
                if m.attrs & UP_RESERVED == 0 && have[k].is_none() {
                    on_join(&m);
                    have[k] = Some(m);
                }
            }
            if have.iter().any(Option::is_none) {
                let pause = Duration::from_millis(50);
                tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
            }
        }
    }
    .await;
    let _ = s.bye().await;
    r
}

/// Has the program of slot `index` joined (its token lost the mark)?
pub(super) async fn has_joined(
    regcred: &RegCred,
    cluster: NodeId,
    index: usize,
    reader: &NodeIdentity,
    client: &ClientOptions,
) -> Result<bool, ClientError> {
    let m = holder(regcred, cluster, index, reader, client).await?;
    Ok(m.is_some_and(|m| m.attrs & UP_RESERVED == 0))
}

/// The member in slot `index` (None: empty; a held GetCluster waits up to
/// the registry's hold for it).
pub(super) async fn holder(
    regcred: &RegCred,
    cluster: NodeId,
    index: usize,
    reader: &NodeIdentity,
    client: &ClientOptions,
) -> Result<Option<MemberInfo>, ClientError> {
    let mut s = Session::connect(regcred, client).await?;
    let r = async {
        s.register(reader, attrs::SOLO | attrs::EPHEMERAL).await?;
        let mut want = Which(0);
        want.insert(index);
        let got = s.get_members(&cluster, want).await?;
        Ok(got.members.into_iter().find(|m| m.index == index))
    }
    .await;
    let _ = s.bye().await;
    r
}
