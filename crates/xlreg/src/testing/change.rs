//! Changing a harness cluster while it runs: resize it, evict a member,
//! replace one (the test of "a member died and a new one took its place"),
//! and watch it change (issue 23).
//!
//! Why in the harness: membership change is exactly what a distributed
//! system under test must survive, and each step here is several protocol
//! calls plus waiting for every member to learn the result. Each method
//! returns only once every member's watch (a [`Watch`] registered as that
//! member) has seen the change, and updates `members[k].view` to what it
//! saw, so a test can act on the new membership at once.
//!
//! The cluster's creator (the harness's admin identity) is its owner, so
//! these work against an embedded registry and an external xlreg one alike.

use std::time::Duration;

use tokio::time::Instant;

use super::{
    bind_endpoints, client_err, endpoints_of, keys, member_identity, member_name, KeyGen,
    LaunchError, LocalCluster, LocalMember, DEFAULT_TEST_KEY_BITS,
};
use crate::client::{
    boot, reader_identity, BootOptions, ClientOptions, ClusterRef, ClusterView, MemberRef,
    NodeIdentity, Watch,
};

/// How long each member's watch may take to see a change.
const SYNC_WAIT: Duration = Duration::from_secs(30);

impl LocalCluster {
    /// The identity that created the cluster: its owner, the one node
    /// (besides the operator) allowed to resize it and evict its members.
    pub fn admin(&self) -> &NodeIdentity {
        &self.admin
    }

    /// The member in `slot`, if there is one.
    pub fn member_in(&self, slot: usize) -> Option<&LocalMember> {
        self.members.iter().find(|m| m.index() == slot)
    }

    /// Refuse changes the fault proxies cannot follow: they were placed for
    /// the members present at launch.
    fn changeable(&self, what: &str) -> Result<(), LaunchError> {
        if self.faults.is_some() {
            return Err(LaunchError::Usage(format!(
                "cannot {what} a cluster launched with faults: its fault proxies are placed \
                 for the members of the launch"
            )));
        }
        Ok(())
    }

    fn cluster_ref(&self) -> ClusterRef {
        ClusterRef::Id(self.info.id)
    }

    /// Change the cluster's size to `size` as its creator and return the
    /// new version. Growing boots a new member (`m03`, `m04`, … by slot)
    /// into each new slot; shrinking works only when the slots from `size`
    /// up are empty (evict those members first; the registry's refusal
    /// names the member in the way). Returns the version every member's
    /// watch saw (after the resize and the new members' joins).
    pub async fn resize(&mut self, size: u32) -> Result<u64, LaunchError> {
        self.changeable("resize")?;
        super::check_shape(size, self.info.endpoint_count)?;
        let old = self.info.max_size;
        let mut version = crate::client::resize(
            &self.regcred,
            &self.cluster_ref(),
            size,
            &self.admin,
            &ClientOptions::default(),
        )
        .await
        .map_err(client_err(format!(
            "resizing cluster {:?} from {old} to {size}",
            self.name
        )))?;
        self.info.max_size = size;
        if size > old {
            // Boot them together: each waits for the whole cluster, which
            // is complete only once all the new slots are filled.
            let mut set = tokio::task::JoinSet::new();
            for slot in old as usize..size as usize {
                let (node, listeners) = self.new_member(member_name(slot)).await?;
                let (rc, id) = (self.regcred.clone(), self.info.id);
                set.spawn(async move {
                    let r = boot(&rc, &ClusterRef::Id(id), &node, &BootOptions::default()).await;
                    (node, listeners, r)
                });
            }
            while let Some(r) = set.join_next().await {
                let (node, listeners, r) =
                    r.map_err(|e| LaunchError::Io(format!("member task: {e}")))?;
                let view = r.map_err(client_err(format!("booting member {}", node.name)))?;
                self.members.push(LocalMember {
                    identity: node,
                    view,
                    listeners: listeners.into_iter().map(Some).collect(),
                });
            }
            version = self.sync(version).await?;
        } else {
            version = self.sync(version).await?;
        }
        Ok(version)
    }

    /// Stop the member in `slot` (its sockets close) and evict it as the
    /// cluster's creator; the slot is free for the next member to join,
    /// the others keep theirs. Returns the new version once every
    /// remaining member's watch saw it.
    pub async fn evict(&mut self, slot: usize) -> Result<u64, LaunchError> {
        self.changeable("evict a member of")?;
        let Some(k) = self.members.iter().position(|m| m.index() == slot) else {
            return Err(LaunchError::Usage(format!(
                "cluster {:?} has no member in slot {slot}",
                self.name
            )));
        };
        // Stopped first, as a crashed member would be: its sockets close.
        let gone = self.members.remove(k);
        drop(gone);
        let version = crate::client::evict(
            &self.regcred,
            &self.cluster_ref(),
            &MemberRef::Index(slot),
            &self.admin,
            &ClientOptions::default(),
        )
        .await
        .map_err(client_err(format!(
            "evicting slot {slot} of cluster {:?}",
            self.name
        )))?;
        self.sync(version).await
    }

    /// Replace the member in `slot`: stop it, evict it, boot a new member
    /// (new ID, keys and endpoints, named like `m01r5`) that takes the
    /// same slot, and wait until every member's watch saw the newcomer.
    /// The other members keep their slots. Returns the newcomer.
    pub async fn replace(&mut self, slot: usize) -> Result<&LocalMember, LaunchError> {
        self.changeable("replace a member of")?;
        let evicted = self.evict(slot).await?;
        let (node, listeners) = self
            .new_member(format!("{}r{evicted}", member_name(slot)))
            .await?;
        let view = boot(
            &self.regcred,
            &self.cluster_ref(),
            &node,
            &BootOptions::default(),
        )
        .await
        .map_err(client_err(format!("booting member {}", node.name)))?;
        if view.self_index != slot {
            return Err(LaunchError::Inconsistent(format!(
                "the replacement of slot {slot} took slot {} (a lower slot was free)",
                view.self_index
            )));
        }
        self.members.push(LocalMember {
            identity: node,
            view,
            listeners: listeners.into_iter().map(Some).collect(),
        });
        // The join was the change after the eviction.
        self.sync(evicted + 1).await?;
        let k = self.members.len() - 1;
        Ok(&self.members[k])
    }

    /// A [`Watch`] of this cluster as a reader (not a member), starting
    /// after the version the members have: its first
    /// [`next`](Watch::next) is the next change.
    pub async fn watch(&self) -> Result<Watch, LaunchError> {
        let reader = reader_identity()
            .await
            .map_err(client_err("making a reader identity"))?;
        let w = Watch::new(
            &self.regcred,
            self.cluster_ref(),
            reader,
            ClientOptions::default(),
        );
        Ok(match self.members.first() {
            Some(m) => w.after(&m.view),
            None => w,
        })
    }

    /// A new member identity with fresh test keys and endpoints listening
    /// on loopback.
    async fn new_member(
        &self,
        name: String,
    ) -> Result<(NodeIdentity, Vec<std::net::TcpListener>), LaunchError> {
        let listeners = bind_endpoints(self.info.endpoint_count as usize)?;
        let mut k = tokio::task::spawn_blocking(|| {
            keys::generate_keys(2, DEFAULT_TEST_KEY_BITS, KeyGen::Fast, 2, &|| {})
        })
        .await
        .map_err(|e| LaunchError::Io(format!("key generation task: {e}")))?
        .map_err(|e| LaunchError::Io(format!("generating keys: {e}")))?;
        let (c, s) = (k.pop().expect("2 keys"), k.pop().expect("2 keys"));
        let node = member_identity(&name, c, s, endpoints_of(&listeners))
            .map_err(client_err(format!("making member {name}")))?;
        Ok((node, listeners))
    }

    /// Wait until every member's watch (as that member) has seen version
    /// `at_least`, and give each member the view it saw. Returns the
    /// version they saw (the latest, should more changes have landed).
    async fn sync(&mut self, at_least: u64) -> Result<u64, LaunchError> {
        let deadline = Instant::now() + SYNC_WAIT;
        let mut set = tokio::task::JoinSet::new();
        for (k, m) in self.members.iter().enumerate() {
            let mut w = Watch::new(
                &self.regcred,
                self.cluster_ref(),
                m.identity.clone(),
                ClientOptions::default(),
            )
            .after(&m.view);
            let name = m.identity.name.clone();
            set.spawn(async move {
                let r = seen(&mut w, at_least, deadline).await;
                w.close().await;
                (k, name, r)
            });
        }
        let mut latest = at_least;
        while let Some(r) = set.join_next().await {
            let (k, name, view) = r.map_err(|e| LaunchError::Io(format!("watch task: {e}")))?;
            let mut view = view.map_err(|e| match e {
                Seen::Client(err) => LaunchError::Client {
                    what: format!("member {name} watching cluster {:?}", self.name),
                    err,
                },
                Seen::Other(m) => LaunchError::Inconsistent(format!("member {name}: {m}")),
            })?;
            view.cluster_name = Some(self.name.clone());
            latest = latest.max(view.version());
            self.members[k].view = view;
        }
        Ok(latest)
    }
}

enum Seen {
    Client(crate::client::ClientError),
    Other(String),
}

/// The first view from `w` at `at_least` or later, by `deadline`.
async fn seen(w: &mut Watch, at_least: u64, deadline: Instant) -> Result<ClusterView, Seen> {
    loop {
        let next = tokio::time::timeout_at(deadline, w.next())
            .await
            .map_err(|_| {
                Seen::Other(format!(
                    "did not see version {at_least} within {SYNC_WAIT:?} (at {})",
                    w.version()
                ))
            })?;
        match next {
            Some(Ok(v)) if v.version() >= at_least => return Ok(v),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(Seen::Client(e)),
            None => return Err(Seen::Other("the cluster was deleted".into())),
        }
    }
}
