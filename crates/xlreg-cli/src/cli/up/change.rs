//! `xlreg fault replace I | evict I | resize N` under `xlreg up -- CMD`:
//! change the running cluster's membership (issue 23).
//!
//! Why in `up`: a test of "a member died and a new node took its place"
//! or "the cluster grew" needs the registry change and the program that
//! fills the slot, in one step. `up` created the cluster, so its admin
//! identity is the cluster's owner and may resize it and evict members.
//! A new member gets a node directory like the others, is joined into its
//! slot by `up` first (so `XLREG_MEMBER_INDEX` is its slot, as at launch;
//! see [`super::slots`]), and its program's own join re-joins that slot.
//! The other programs learn of the change by their own watch
//! (`xlreg members --watch`, `xlreg::client::Watch`).

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;
use xlreg::client::{ClientOptions, ClusterRef, MemberRef, NodeIdentity, UpEnv};
use xlreg::regcred::RegCred;
use xlreg::testing::{self, member_identity, member_name, KeyGen};
use xlreg::wire::NodeId;
use xlreg::ErrorChain;

use super::children::Children;

/// What changing the cluster needs.
pub(super) struct Changer {
    pub regcred: RegCred,
    pub regcred_path: PathBuf,
    pub cluster: NodeId,
    pub name: String,
    /// The cluster's creator (its owner).
    pub admin: NodeIdentity,
    /// Reads the cluster without joining it.
    pub reader: NodeIdentity,
    pub client: ClientOptions,
    pub key_bits: u32,
    pub key_gen: KeyGen,
    pub endpoints: u32,
    pub nodes_dir: PathBuf,
    pub listen_fds: bool,
    /// Started with `--faults`: the proxies cannot follow a resize.
    pub faults: bool,
    /// How long a new program may take to join.
    pub wait: Duration,
    /// The cluster's size now.
    pub size: u32,
    /// New members started so far (a replacement of slot 1 is named
    /// `m01r1`, `m01r2`, …).
    pub started: u32,
}

impl Changer {
    fn cluster_ref(&self) -> ClusterRef {
        ClusterRef::Id(self.cluster)
    }

    /// Refuse before killing anything when the registry cannot change
    /// clusters (a Go registry, `up --regcred` of one).
    pub async fn can_change(&self) -> Result<(), String> {
        let s = xlreg::client::Session::connect(&self.regcred, &self.client)
            .await
            .map_err(|e| format!("connecting to the registry: {}", ErrorChain(&e)))?;
        let (framing, version) = (s.framing(), s.server_version());
        let _ = s.bye().await;
        if framing != xlreg::wire::Framing::LengthPrefixed {
            return Err(format!(
                "the registry (version {version}) is a Go registry; it cannot evict or \
                 replace members (kill I and restart I work)"
            ));
        }
        Ok(())
    }

    /// Evict the member in slot `i` (its program has exited).
    pub async fn evict(&self, kids: &mut Children, i: usize) -> Result<String, String> {
        let v = self.evict_slot(kids, i).await?;
        Ok(format!("evict {i} ({}): version {v}", kids.name(i)))
    }

    async fn evict_slot(&self, kids: &mut Children, i: usize) -> Result<u64, String> {
        let v = xlreg::client::evict(
            &self.regcred,
            &self.cluster_ref(),
            &MemberRef::Index(i),
            &self.admin,
            &self.client,
        )
        .await
        .map_err(|e| format!("evicting slot {i}: {}", ErrorChain(&e)))?;
        kids.evicted[i] = true;
        Ok(v)
    }

    /// Replace the member in slot `i` (its program has exited, or it was
    /// evicted): evict it, and start a new program with a new node in the
    /// slot, on the slot's endpoints (so `--faults` proxies still reach
    /// it); done once the program has joined.
    pub async fn replace(&mut self, kids: &mut Children, i: usize) -> Result<String, String> {
        if let Some(lower) = (0..i).find(|&k| kids.evicted[k]) {
            return Err(format!(
                "slot {lower} is empty too, and a new member takes the lowest free slot: \
                 replace {lower} first"
            ));
        }
        let old = kids.env(i).clone();
        let old_id = NodeIdentity::load(&old.node_dir)
            .map(|n| n.id.to_hex())
            .unwrap_or_else(|_| "?".into());
        if !kids.evicted[i] {
            self.evict_slot(kids, i).await?;
        }
        self.started += 1;
        let name = format!("{}r{}", member_name(i), self.started);
        let env = self.new_member(i, name, old.endpoints.clone()).await?;
        let (new_name, new_dir) = (env.member_name.clone(), env.node_dir.clone());
        kids.set_member(i, env);
        let pid = kids
            .restart(i)
            .map_err(|e| format!("starting {new_name}: {e:#}"))?;
        self.await_joins(kids, &[(i, new_name.clone())]).await?;
        let new_id = NodeIdentity::load(&new_dir)
            .map(|n| n.id.to_hex())
            .unwrap_or_else(|_| "?".into());
        Ok(format!(
            "replace {i}: {} ({old_id}) -> {new_name} ({new_id}, pid {pid})",
            old.member_name
        ))
    }

    /// Change the size to `n`: grow by starting programs for the new
    /// slots (done once they joined); shrink only over empty slots.
    pub async fn resize(&mut self, kids: &mut Children, n: u32) -> Result<String, String> {
        if self.faults {
            return Err(format!(
                "cannot resize a cluster started with --faults: its fault proxies are placed \
                 for the {} members it started with (replace I works: the slot keeps its ports)",
                self.size
            ));
        }
        testing::check_shape(n, self.endpoints).map_err(|e| e.to_string())?;
        let old = self.size;
        if n > old {
            if let Some(hole) = (0..old as usize).find(|&k| kids.evicted[k]) {
                return Err(format!(
                    "slot {hole} is empty (evicted), and a new member takes the lowest free \
                     slot: `replace {hole}` fills it first"
                ));
            }
        }
        let v = xlreg::client::resize(
            &self.regcred,
            &self.cluster_ref(),
            n,
            &self.admin,
            &self.client,
        )
        .await
        .map_err(|e| {
            let why = ErrorChain(&e).to_string();
            match why.contains("evict it first") {
                true => format!("{why}; `xlreg fault evict SLOT` stops its program and frees it"),
                false => why,
            }
        })?;
        self.size = n;
        if n <= old {
            return Ok(format!("resize {old} -> {n}: version {v}"));
        }
        let mut started = Vec::new();
        for slot in old as usize..n as usize {
            let ls = testing::bind_endpoints(self.endpoints as usize).map_err(|e| e.to_string())?;
            let eps = testing::endpoints_of(&ls);
            let env = self.new_member(slot, member_name(slot), eps).await?;
            let name = env.member_name.clone();
            kids.set_member(slot, env);
            // With --listen-fds the program inherits the bound sockets;
            // else they close here and it binds the ports itself.
            let passed = if self.listen_fds {
                for l in &ls {
                    l.set_nonblocking(false)
                        .map_err(|e| format!("listening socket: {e}"))?;
                }
                ls
            } else {
                Vec::new()
            };
            kids.spawn_one(slot, &passed)
                .map_err(|e| format!("starting {name}: {e:#}"))?;
            started.push((slot, name));
        }
        self.await_joins(kids, &started).await?;
        let names: Vec<&str> = started.iter().map(|(_, n)| n.as_str()).collect();
        Ok(format!(
            "resize {old} -> {n}: version {v}; {} joined",
            names.join(", ")
        ))
    }

    /// A new member for `slot`: keys, identity saved in its node
    /// directory, joined into the slot by `up` (marked reserved); its
    /// environment.
    async fn new_member(
        &self,
        slot: usize,
        name: String,
        endpoints: Vec<String>,
    ) -> Result<UpEnv, String> {
        let (bits, gen) = (self.key_bits, self.key_gen);
        let mut keys = tokio::task::spawn_blocking(move || {
            testing::keys::generate_keys(2, bits, gen, 2, &|| {})
        })
        .await
        .map_err(|e| format!("key generation task: {e}"))?
        .map_err(|e| format!("generating keys for {name}: {e}"))?;
        let (sig, comms) = (keys.pop().expect("2 keys"), keys.pop().expect("2 keys"));
        let mut node = member_identity(&name, comms, sig, endpoints.clone())
            .map_err(|e| format!("making member {name}: {}", ErrorChain(&e)))?;
        let node_dir = self.nodes_dir.join(&name);
        node.save(&node_dir)
            .map_err(|e| format!("saving {name}: {}", ErrorChain(&e)))?;
        super::slots::reserve(
            &self.regcred,
            self.cluster,
            std::slice::from_ref(&node),
            &self.client,
        )
        .await
        .map_err(|e| format!("joining {name} into slot {slot}: {}", ErrorChain(&e)))?;
        let held = super::slots::holder(
            &self.regcred,
            self.cluster,
            slot,
            &self.reader,
            &self.client,
        )
        .await
        .map_err(|e| format!("reading slot {slot}: {}", ErrorChain(&e)))?;
        if held.as_ref().map(|m| &m.name) != Some(&name) {
            return Err(format!(
                "{name} did not take slot {slot} (it holds {:?}; a lower slot was free?)",
                held.map(|m| m.name)
            ));
        }
        Ok(UpEnv {
            regcred: self.regcred_path.clone(),
            cluster_name: self.name.clone(),
            cluster_id: self.cluster,
            cluster_size: self.size,
            member_name: name,
            member_index: slot,
            endpoints,
            node_dir,
        })
    }

    /// Wait until the programs of `slots` have joined, or one exits first
    /// (other exits are kept for the caller's loop), or the wait ends.
    async fn await_joins(
        &self,
        kids: &mut Children,
        slots: &[(usize, String)],
    ) -> Result<(), String> {
        let deadline = Instant::now() + self.wait;
        let joined = super::slots::watch(
            &self.regcred,
            self.cluster,
            slots,
            &self.reader,
            &self.client,
            deadline,
            |_| {},
        );
        tokio::pin!(joined);
        loop {
            tokio::select! {
                r = &mut joined => {
                    return r.map(|_| ()).map_err(|e| {
                        format!("waiting for the new member to join: {}", ErrorChain(&e))
                    });
                }
                Some((j, st)) = kids.exits.recv() => {
                    if slots.iter().any(|(s, _)| *s == j) {
                        let why = kids.record(j, st);
                        return Err(format!("{why} before joining"));
                    }
                    kids.backlog.push_back((j, st));
                }
            }
        }
    }
}
