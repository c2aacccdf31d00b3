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

/// Wait until the program of every slot has joined (its token no longer
/// carries [`UP_RESERVED`]), calling `on_join` once per member; returns
/// the members in slot order, or [`ClientError::IncompleteCluster`] at
/// `deadline`. Checks that slot i holds the member named `names[i]`.
pub(super) async fn watch(
    regcred: &RegCred,
    cluster: NodeId,
    names: &[String],
    reader: &NodeIdentity,
    client: &ClientOptions,
    deadline: Instant,
    mut on_join: impl FnMut(&MemberInfo),
) -> Result<Vec<MemberInfo>, ClientError> {
    let start = Instant::now();
    let n = names.len();
    let mut s = Session::connect(regcred, client).await?;
    let r = async {
        s.register(reader, attrs::SOLO | attrs::EPHEMERAL).await?;
        let mut have: Vec<Option<MemberInfo>> = vec![None; n];
        loop {
            let mut want = Which(0);
            for i in (0..n).filter(|&i| have[i].is_none()) {
                want.insert(i);
            }
            if want.0 == 0 {
                return Ok(have.into_iter().flatten().collect());
            }
            if Instant::now() >= deadline {
                let missing: Vec<usize> = (0..n).filter(|&i| have[i].is_none()).collect();
                return Err(ClientError::IncompleteCluster {
                    cluster: cluster.to_hex(),
                    have: n - missing.len(),
                    want: n,
                    missing,
                    waited: start.elapsed(),
                });
            }
            for m in s.get_members(&cluster, want).await?.members {
                if names.get(m.index) != Some(&m.name) {
                    return Err(ClientError::BadReply(format!(
                        "slot {} holds {:?}, up reserved it for {:?}",
                        m.index,
                        m.name,
                        names.get(m.index)
                    )));
                }
                if m.attrs & UP_RESERVED == 0 {
                    on_join(&m);
                    let i = m.index;
                    have[i] = Some(m);
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
    let mut s = Session::connect(regcred, client).await?;
    let r = async {
        s.register(reader, attrs::SOLO | attrs::EPHEMERAL).await?;
        let mut want = Which(0);
        want.insert(index);
        let got = s.get_members(&cluster, want).await?;
        Ok(got
            .members
            .iter()
            .any(|m| m.index == index && m.attrs & UP_RESERVED == 0))
    }
    .await;
    let _ = s.bye().await;
    r
}
