//! `xlreg resize | evict | leave` and `xlreg members --watch`: clusters
//! that change, from a shell (xlreg registries only; a Go registry is
//! refused before anything is sent).
//!
//! Why here and not in `admin`: these run through the registry protocol as
//! a node — the cluster's creator (the identity `xlreg create` keeps), a
//! member (`xlreg join --node-dir`), or a reader — while `xlreg admin
//! resize/evict` go through the operator's HTTP side door with its token.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::cli::member::{client_err, default_admin_dir, print_json, ClusterArgs, ConnArgs};
use crate::cli::{runtime, BadInput};
use xlreg::client::{
    members_table, ClientOptions, ClusterRef, ClusterView, MemberRef, NodeIdentity, Watch,
};
use xlreg::regcred::RegCred;

/// Arguments of `xlreg resize`.
#[derive(Args, Debug)]
pub struct ResizeArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The new size, 2..=64. Growing always works; shrinking only when the
    /// slots from SIZE up are empty (evict their members first).
    size: u32,
    /// Directory of the identity that created the cluster. Default: the
    /// one `xlreg create` keeps ($XDG_DATA_HOME/xlreg/admin, else
    /// ~/.local/share/xlreg/admin).
    #[arg(long, value_name = "DIR")]
    node_dir: Option<PathBuf>,
}

/// Arguments of `xlreg evict`.
#[derive(Args, Debug)]
pub struct EvictArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The member to remove: all digits is a slot index, anything else a
    /// member name. Its slot is free for the next member to join; the
    /// others keep theirs.
    member: String,
    /// Directory of the identity that created the cluster (as for
    /// `xlreg resize`).
    #[arg(long, value_name = "DIR")]
    node_dir: Option<PathBuf>,
}

/// Arguments of `xlreg leave`.
#[derive(Args, Debug)]
pub struct LeaveArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The leaving member's identity directory (as given to `xlreg join
    /// --node-dir`; XLREG_NODE_DIR under `xlreg up -- CMD`).
    #[arg(long, value_name = "DIR", env = "XLREG_NODE_DIR")]
    node_dir: PathBuf,
}

/// The identity kept in `dir`, which must exist: a change is made as a
/// known node, never a fresh one.
fn existing_identity(dir: &std::path::Path, role: &str) -> anyhow::Result<NodeIdentity> {
    NodeIdentity::load(dir)
        .map_err(|e| BadInput(format!("{role} identity in {}: {e}", dir.display())).into())
}

/// The creator's identity: `--node-dir`, else `xlreg create`'s default.
fn owner(node_dir: &Option<PathBuf>) -> anyhow::Result<NodeIdentity> {
    let dir = node_dir.clone().or_else(default_admin_dir).ok_or_else(|| {
        BadInput(
            "no HOME or XDG_DATA_HOME: give --node-dir, the identity that created the cluster"
                .into(),
        )
    })?;
    existing_identity(
        &dir,
        "the cluster creator's (the admin identity of `xlreg create`)",
    )
}

#[derive(Serialize)]
struct Changed<'a> {
    cluster: String,
    change: &'a str,
    version: u64,
}

fn report(json: bool, cluster: &ClusterRef, change: &str, version: u64) -> anyhow::Result<()> {
    if json {
        return print_json(&Changed {
            cluster: cluster.to_string(),
            change,
            version,
        });
    }
    println!("cluster {cluster}: {change} (version {version})");
    Ok(())
}

/// Run `xlreg resize`: change a cluster's size as its creator.
pub fn run_resize(a: ResizeArgs) -> anyhow::Result<()> {
    xlreg::limits::check_cluster_size(a.size).map_err(|e| BadInput(format!("resize: {e}")))?;
    let cluster = a.cluster.cluster_ref()?;
    let (rc, opts) = a.conn.load()?;
    let node = owner(&a.node_dir)?;
    let v = runtime()?
        .block_on(xlreg::client::resize(&rc, &cluster, a.size, &node, &opts))
        .map_err(|e| client_err(e, &format!("resizing cluster {cluster} to {}", a.size)))?;
    report(
        a.conn.json,
        &cluster,
        &format!("resized to {} members", a.size),
        v,
    )
}

/// Run `xlreg evict`: remove a member from its slot as the creator.
pub fn run_evict(a: EvictArgs) -> anyhow::Result<()> {
    let member: MemberRef = a
        .member
        .parse()
        .map_err(|e| BadInput(format!("evict: {e}")))?;
    let cluster = a.cluster.cluster_ref()?;
    let (rc, opts) = a.conn.load()?;
    let node = owner(&a.node_dir)?;
    let v = runtime()?
        .block_on(xlreg::client::evict(&rc, &cluster, &member, &node, &opts))
        .map_err(|e| client_err(e, &format!("evicting {member} of cluster {cluster}")))?;
    report(a.conn.json, &cluster, &format!("evicted {member}"), v)
}

/// Run `xlreg leave`: the member in `--node-dir` gives up its slot.
pub fn run_leave(a: LeaveArgs) -> anyhow::Result<()> {
    let cluster = a.cluster.cluster_ref()?;
    let (rc, opts) = a.conn.load()?;
    let node = existing_identity(&a.node_dir, "the member's")?;
    let v = runtime()?
        .block_on(xlreg::client::leave(&rc, &cluster, &node, &opts))
        .map_err(|e| client_err(e, &format!("{:?} leaving cluster {cluster}", node.name)))?;
    report(
        a.conn.json,
        &cluster,
        &format!("member {:?} left", node.name),
        v,
    )
}

/// What `members --watch` does next.
enum Next {
    View(Option<Result<ClusterView, xlreg::client::ClientError>>),
    Stop,
}

/// `xlreg members --watch`: print the cluster, then each new version with
/// what changed, until it is deleted (Ok) or Ctrl-C (Ok).
pub fn watch_members(
    rc: &RegCred,
    cluster: ClusterRef,
    kept_reader: Option<NodeIdentity>,
    opts: ClientOptions,
    json: bool,
) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let reader = match kept_reader {
            Some(r) => r,
            None => xlreg::client::reader_identity()
                .await
                .map_err(|e| client_err(e, "making a reader identity"))?,
        };
        let mut watch = Watch::new(rc, cluster.clone(), reader, opts);
        let mut last: Option<ClusterView> = None;
        let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
        loop {
            let next = tokio::select! {
                n = watch.next() => Next::View(n),
                _ = &mut stop => Next::Stop,
            };
            match next {
                Next::Stop => {
                    watch.close().await;
                    return Ok(());
                }
                Next::View(None) => {
                    let end = format!("cluster {cluster} was deleted (or expired)");
                    if json {
                        eprintln!("{end}");
                    } else {
                        println!("{end}");
                    }
                    return Ok(());
                }
                Next::View(Some(Err(e))) => {
                    return Err(client_err(e, &format!("watching cluster {cluster}")));
                }
                Next::View(Some(Ok(view))) => {
                    print_version(&view, last.as_ref(), json)?;
                    last = Some(view);
                }
            }
        }
    })
}

/// One version: the whole table the first time, then one line per change
/// (`version 4: slot 3: m03 joined (…)`); with `json`, one line of the
/// view's JSON plus `"changes"`.
fn print_version(view: &ClusterView, last: Option<&ClusterView>, json: bool) -> anyhow::Result<()> {
    let changes: Vec<String> = last
        .map(|prev| {
            view.changes_from(prev)
                .iter()
                .map(|c| c.to_string())
                .collect()
        })
        .unwrap_or_default();
    if json {
        let mut doc = view.to_json();
        doc["changes"] = serde_json::json!(changes);
        println!("{}", serde_json::to_string(&doc).context("encoding JSON")?);
        return Ok(());
    }
    if last.is_none() {
        println!(
            "cluster   {} {}",
            view.cluster_name.as_deref().unwrap_or("-"),
            view.cluster_id
        );
        println!(
            "version   {}: {} of {} members",
            view.version(),
            view.members.len(),
            view.max_size
        );
        println!();
        print!("{}", members_table(&view.members, None));
        return Ok(());
    }
    if changes.is_empty() {
        println!("version {}: no change in the members", view.version());
    }
    for c in changes {
        println!("version {}: {c}", view.version());
    }
    Ok(())
}
