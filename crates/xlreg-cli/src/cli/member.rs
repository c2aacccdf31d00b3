//! `xlreg register | create | join | members`: the member side of the
//! registry from a shell.
//!
//! Each command is a thin layer over [`xlreg::client`]: it loads the
//! regcred and the node identity, runs one library flow and prints the
//! result as a table or, with `--json`, as one JSON document (the same one
//! the library renders, so scripts see identical output from every
//! command). Unusable input (files, flags, a corrupt node directory) exits
//! with code 2; failures talking to the registry with code 1.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::cli::cred::load_cred;
use crate::cli::{runtime, BadInput};
use xlreg::client::{
    members_table, BootOptions, ClientError, ClientOptions, ClusterRef, NodeIdentity, NodeOptions,
    DEFAULT_KEY_BITS,
};
use xlreg::regcred::RegCred;
use xlreg::wire::{check_endpoint, NodeId};

/// How to reach the registry; shared by the member commands.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// The registry's credentials file (regCred.dat). Also read from
    /// XLREG_REGCRED.
    #[arg(long, env = "XLREG_REGCRED", value_name = "FILE")]
    pub regcred: PathBuf,
    /// Seconds to wait for each reply, write or connect.
    #[arg(long, value_name = "SECS", default_value_t = 15.0)]
    pub timeout: f64,
    /// Talk exactly like a Go client: propose version 0, so the session
    /// uses the Go framing (no length prefix, messages ≤ 16 KiB).
    #[arg(long)]
    pub legacy_framing: bool,
    /// Connect to HOST:PORT instead of the regcred's first endpoint.
    #[arg(long, value_name = "HOST:PORT")]
    pub address: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

impl ConnArgs {
    pub(crate) fn load(&self) -> anyhow::Result<(RegCred, ClientOptions)> {
        let rc = load_cred(&self.regcred)?;
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= 86_400.0) {
            return Err(BadInput(format!(
                "--timeout {} must be a number of seconds in (0, 86400]",
                self.timeout
            ))
            .into());
        }
        if let Some(a) = &self.address {
            check_endpoint(a).map_err(|e| BadInput(format!("--address: {e}")))?;
        }
        let t = Duration::from_secs_f64(self.timeout);
        Ok((
            rc,
            ClientOptions {
                connect_timeout: t,
                io_timeout: t,
                legacy_framing: self.legacy_framing,
                address: self.address.clone(),
            },
        ))
    }
}

/// Which node identity to use.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// Directory holding this member's identity (node.json and two PEM
    /// keys, mode 0600): created on first use, reused later so that a
    /// restarted member keeps its ID and keys. Without it, a fresh
    /// ephemeral identity is made in memory (new ID and keys on every run,
    /// nothing saved). Programs launched by `xlreg up -- CMD` get it in
    /// XLREG_NODE_DIR.
    #[arg(long, value_name = "DIR", env = "XLREG_NODE_DIR")]
    pub node_dir: Option<PathBuf>,
    /// Member name (unique within a cluster). Default: the saved name, or
    /// for a new identity `<short host name>-<6 random hex digits>`.
    #[arg(long)]
    pub name: Option<String>,
    /// An endpoint to advertise, `HOST:PORT` (IPv4 literal for Go peers);
    /// repeat for several: the first is member-to-member, the second
    /// client-to-member. Replaces the saved endpoints.
    #[arg(long = "endpoint", value_name = "HOST:PORT")]
    pub endpoints: Vec<String>,
    /// RSA key size when a new identity is generated.
    #[arg(long, value_name = "BITS", default_value_t = DEFAULT_KEY_BITS)]
    pub key_bits: u32,
}

impl NodeArgs {
    /// Load or create the identity. Any problem is bad input.
    pub(crate) fn identity(&self) -> anyhow::Result<NodeIdentity> {
        let opts = NodeOptions {
            name: self.name.clone(),
            endpoints: (!self.endpoints.is_empty()).then(|| self.endpoints.clone()),
            key_bits: self.key_bits,
        };
        let r = match &self.node_dir {
            Some(dir) => NodeIdentity::load_or_create(dir, &opts).map(|(n, created)| {
                if created {
                    tracing::info!("new identity {} saved in {}", n.id, dir.display());
                }
                n
            }),
            None => NodeIdentity::generate(&opts),
        };
        r.map_err(|e| BadInput(e.to_string()).into())
    }
}

/// Arguments of `xlreg register`.
#[derive(Args, Debug)]
pub struct RegisterArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    node: NodeArgs,
}

/// Arguments of `xlreg create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Cluster name. If it exists, the registry returns the existing
    /// cluster unchanged (its own size and endpoint count).
    name: String,
    /// Maximum number of members, 2..=64.
    #[arg(long, default_value_t = 4)]
    size: u32,
    /// Endpoints each member is expected to advertise, 1..=16.
    #[arg(long = "endpoints", value_name = "K", default_value_t = 1)]
    endpoints: u32,
    /// Lifetime after the last Join or GetCluster (90s, 30m, 2h, 7d or
    /// never = the registry's default); an xlreg registry then removes the
    /// cluster. A Go registry cannot carry it (a warning says so).
    #[arg(long, value_name = "TTL", default_value = "never", value_parser = crate::cli::parse_ttl)]
    ttl: crate::cli::Ttl,
    /// Directory of the administrator identity that creates clusters
    /// (generated once, mode 0700/0600, reused by every later `create`).
    /// Default: $XDG_DATA_HOME/xlreg/admin, else ~/.local/share/xlreg/admin.
    #[arg(long, value_name = "DIR")]
    node_dir: Option<PathBuf>,
}

/// Where `xlreg create` keeps its administrator identity by default: the
/// XDG data directory (`$XDG_DATA_HOME`, if absolute, else
/// `$HOME/.local/share`), subdirectory `xlreg/admin`.
pub fn default_admin_dir() -> Option<PathBuf> {
    Some(data_dir()?.join("admin"))
}

/// Where `xlreg members` keeps its reader identity: `xlreg/reader` beside
/// the admin identity (1024-bit keys, made on the first read).
pub fn default_reader_dir() -> Option<PathBuf> {
    Some(data_dir()?.join("reader"))
}

/// `$XDG_DATA_HOME/xlreg` (if absolute), else `$HOME/.local/share/xlreg`.
fn data_dir() -> Option<PathBuf> {
    let data = match std::env::var_os("XDG_DATA_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => {
            let home = PathBuf::from(std::env::var_os("HOME")?);
            if !home.is_absolute() {
                return None;
            }
            home.join(".local/share")
        }
    };
    Some(data.join("xlreg"))
}

/// Load the administrator identity in `dir`, generating it on first use.
/// An exclusive lock on `dir/lock` keeps two first `create`s from writing
/// two half identities.
fn admin_identity(dir: &std::path::Path) -> anyhow::Result<(NodeIdentity, bool)> {
    let opts = NodeOptions {
        name: Some("admin".into()),
        endpoints: None,
        key_bits: DEFAULT_KEY_BITS,
    };
    kept_identity(dir, "admin", opts)
}

/// Load the identity kept in `dir` for `role` (admin, reader), generating
/// it with `new` on first use, under the same lock.
fn kept_identity(
    dir: &std::path::Path,
    role: &str,
    new: NodeOptions,
) -> anyhow::Result<(NodeIdentity, bool)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let bad = |what: String| -> anyhow::Error { BadInput(what).into() };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| bad(format!("{role} identity directory {}: {e}", dir.display())))?;
    let lock_path = dir.join("lock");
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| bad(format!("{}: {e}", lock_path.display())))?;
    // SAFETY: flock on a descriptor we own; released when `lock` drops.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(bad(format!("{}: {e}", lock_path.display())));
    }
    let opts = if dir.join("node.json").exists() {
        NodeOptions { name: None, ..new }
    } else {
        new
    };
    let r = NodeIdentity::load_or_create(dir, &opts)
        .map_err(|e| bad(format!("{role} identity: {e}")))?;
    drop(lock);
    Ok(r)
}

/// Which cluster, by name or by ID.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct ClusterArgs {
    /// Cluster name. (A Go registry crashes on an unknown name: prefer
    /// --cluster-id with one.)
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Cluster ID, 40 or 64 hex digits (printed by `xlreg create`; given
    /// to programs launched by `xlreg up -- CMD` in XLREG_CLUSTER_ID).
    #[arg(long, value_name = "HEX", env = "XLREG_CLUSTER_ID")]
    cluster_id: Option<String>,
}

impl ClusterArgs {
    pub(crate) fn cluster_ref(&self) -> anyhow::Result<ClusterRef> {
        match (&self.cluster, &self.cluster_id) {
            (_, Some(hex)) => Ok(ClusterRef::Id(parse_id(hex)?)),
            (Some(name), None) if !name.is_empty() => Ok(ClusterRef::Name(name.clone())),
            _ => Err(BadInput("give --cluster NAME or --cluster-id HEX".into()).into()),
        }
    }
}

fn parse_id(hex: &str) -> anyhow::Result<NodeId> {
    hex.parse::<NodeId>()
        .map_err(|e| BadInput(format!("--cluster-id: {e} (expected 40 or 64 hex digits)")).into())
}

/// Arguments of `xlreg join`.
#[derive(Args, Debug)]
pub struct JoinArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    node: NodeArgs,
    /// Seconds to wait for every member to join; failing if the cluster is
    /// not complete by then. 0: return right after the join with the
    /// members known so far.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    wait: f64,
}

/// Arguments of `xlreg members`.
#[derive(Args, Debug)]
pub struct MembersArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Cluster ID, 40 or 64 hex digits (printed by `xlreg create`).
    #[arg(long, value_name = "HEX", required_unless_present = "cluster")]
    cluster_id: Option<String>,
    /// Cluster name (needs an xlreg registry: looking a cluster up by name
    /// without joining it is an xlreg extension of GetCluster).
    #[arg(long, value_name = "NAME", conflicts_with = "cluster_id")]
    cluster: Option<String>,
    /// Keep watching: print each new version of the cluster with what
    /// changed (joins, departures, replacements, resizes) as it happens,
    /// until the cluster is deleted (exit 0) or Ctrl-C. With --json, one
    /// JSON document per line. Needs an xlreg registry.
    #[arg(long)]
    watch: bool,
}

/// Exit code 2 for problems with what the user gave, 1 for the rest.
pub(crate) fn client_err(e: ClientError, doing: &str) -> anyhow::Error {
    match e {
        ClientError::Identity(_) | ClientError::RegCred(_) | ClientError::Usage(_) => {
            BadInput(format!("{doing}: {e}")).into()
        }
        e => anyhow::Error::new(e).context(doing.to_string()),
    }
}

/// Run `xlreg register`: register the node with the registry, print its ID.
pub fn run_register(a: RegisterArgs) -> anyhow::Result<()> {
    let (rc, opts) = a.conn.load()?;
    let node = a.node.identity()?;
    let id = runtime()?
        .block_on(xlreg::client::register(&rc, &node, &opts))
        .map_err(|e| client_err(e, &format!("registering {}", node.name)))?;
    if a.conn.json {
        #[derive(Serialize)]
        struct Out<'a> {
            id: String,
            name: &'a str,
            endpoints: &'a [String],
            node_dir: Option<String>,
            ephemeral: bool,
        }
        print_json(&Out {
            id: id.to_hex(),
            name: &node.name,
            endpoints: &node.endpoints,
            node_dir: node.dir().map(|d| d.display().to_string()),
            ephemeral: node.is_ephemeral(),
        })
    } else {
        println!("{id}");
        match node.dir() {
            Some(d) => eprintln!("registered {:?}; identity in {}", node.name, d.display()),
            None => eprintln!(
                "registered {:?} with an ephemeral identity (not saved; use --node-dir to keep it)",
                node.name
            ),
        }
        Ok(())
    }
}

/// Run `xlreg create`: create (or look up) a cluster, print its ID.
pub fn run_create(a: CreateArgs) -> anyhow::Result<()> {
    if !(2..=64).contains(&a.size) {
        return Err(BadInput(format!("--size {} is not in 2..=64", a.size)).into());
    }
    if !(1..=16).contains(&a.endpoints) {
        return Err(BadInput(format!("--endpoints {} is not in 1..=16", a.endpoints)).into());
    }
    if a.name.is_empty() {
        return Err(BadInput("the cluster name must not be empty".into()).into());
    }
    let (rc, opts) = a.conn.load()?;
    let admin_dir = a.node_dir.clone().or_else(default_admin_dir);
    let spec = xlreg::client::ClusterSpec::new(a.name.clone(), a.size)
        .endpoints(a.endpoints)
        .ttl(a.ttl.0);
    let rt = runtime()?;
    let info = match &admin_dir {
        Some(dir) => {
            let (admin, created) = admin_identity(dir)?;
            if created {
                eprintln!(
                    "created the admin identity {} in {} (kept for later `create`s)",
                    admin.id,
                    dir.display()
                );
            }
            rt.block_on(xlreg::client::create_cluster_as(&rc, &admin, &spec, &opts))
        }
        None => {
            eprintln!(
                "note: no HOME or XDG_DATA_HOME: using a fresh admin identity \
                 (give --node-dir to keep one)"
            );
            rt.block_on(xlreg::client::create_cluster(&rc, &spec, &opts))
        }
    }
    .map_err(|e| client_err(e, &format!("creating cluster {:?}", a.name)))?;
    if info.max_size != a.size || info.endpoint_count != a.endpoints {
        eprintln!(
            "note: cluster {:?} already existed with size {} and {} endpoint(s); \
             it was not changed",
            a.name, info.max_size, info.endpoint_count
        );
    }
    if a.conn.json {
        #[derive(Serialize)]
        struct Out<'a> {
            cluster_id: String,
            name: &'a str,
            max_size: u32,
            endpoint_count: u32,
            admin_node_dir: Option<String>,
        }
        print_json(&Out {
            cluster_id: info.id.to_hex(),
            name: &a.name,
            max_size: info.max_size,
            endpoint_count: info.endpoint_count,
            admin_node_dir: admin_dir.map(|d| d.display().to_string()),
        })
    } else {
        println!("cluster_id      {}", info.id);
        println!("name            {}", a.name);
        println!("max_size        {}", info.max_size);
        println!("endpoint_count  {}", info.endpoint_count);
        if let Some(d) = &admin_dir {
            println!("admin_node_dir  {}", d.display());
        }
        Ok(())
    }
}

/// Run `xlreg join`: boot the member and print its view of the cluster.
pub fn run_join(a: JoinArgs) -> anyhow::Result<()> {
    if !(a.wait.is_finite() && (0.0..=86_400.0).contains(&a.wait)) {
        return Err(BadInput(format!("--wait {} must be 0..=86400 seconds", a.wait)).into());
    }
    let cluster = a.cluster.cluster_ref()?;
    let (rc, client) = a.conn.load()?;
    let node = a.node.identity()?;
    if node.endpoints.is_empty() {
        return Err(BadInput(format!(
            "member {:?} has no endpoint: give --endpoint HOST:PORT (where it listens; \
             saved with --node-dir). Registries refuse members without one",
            node.name
        ))
        .into());
    }
    let opts = BootOptions {
        client,
        wait: (a.wait > 0.0).then(|| Duration::from_secs_f64(a.wait)),
        ..BootOptions::default()
    };
    let view = runtime()?
        .block_on(xlreg::client::boot(&rc, &cluster, &node, &opts))
        .map_err(|e| client_err(e, &format!("joining cluster {cluster} as {:?}", node.name)))?;
    if a.conn.json {
        println!("{}", view.to_json_string());
        return Ok(());
    }
    let name = view.cluster_name.as_deref().unwrap_or("-");
    println!("cluster   {name} {}", view.cluster_id);
    println!(
        "size      {} of {} members{}",
        view.members.len(),
        view.max_size,
        if view.is_complete() {
            ""
        } else {
            " (incomplete)"
        }
    );
    println!("endpoints {} per member", view.endpoint_count);
    println!("self      #{} {} {}", view.self_index, node.name, node.id);
    println!();
    print!("{}", members_table(&view.members, Some(view.self_index)));
    Ok(())
}

/// The reader identity kept under the data directory (made once, like the
/// admin one); `None` without a data directory (then the process's shared
/// [`xlreg::client::reader_identity`]).
pub(crate) fn kept_reader() -> anyhow::Result<Option<NodeIdentity>> {
    match default_reader_dir() {
        Some(dir) => Ok(Some(
            kept_identity(&dir, "reader", xlreg::client::reader_options())?.0,
        )),
        None => Ok(None),
    }
}

/// Run `xlreg members`: list a cluster's members without joining it.
pub fn run_members(a: MembersArgs) -> anyhow::Result<()> {
    let cluster = match (&a.cluster, a.cluster_id.as_deref()) {
        (Some(name), _) => ClusterRef::Name(name.clone()),
        (None, id) => ClusterRef::Id(parse_id(id.unwrap_or_default())?),
    };
    let (rc, opts) = a.conn.load()?;
    let kept = kept_reader()?;
    if a.watch {
        return crate::cli::change::watch_members(&rc, cluster, kept, opts, a.conn.json);
    }
    let list = runtime()?
        .block_on(async {
            let reader = match kept {
                Some(r) => r,
                None => xlreg::client::reader_identity().await?,
            };
            xlreg::client::read_cluster(&rc, &cluster, &reader, &opts).await
        })
        .map_err(|e| {
            let go_refusal = e.server_text() == Some("invalid msg type for current state");
            let doing = format!("reading the members of cluster {cluster}");
            if go_refusal {
                client_err(e, &doing).context(
                    "this registry (a Go xlReg?) answers GetCluster only after a Join; \
                     use `xlreg join --wait 0` instead",
                )
            } else {
                client_err(e, &doing)
            }
        })?;
    if a.conn.json {
        println!("{}", list.to_json_string());
    } else {
        println!(
            "cluster   {} ({} members)",
            list.cluster_id,
            list.members.len()
        );
        println!();
        print!("{}", members_table(&list.members, None));
    }
    Ok(())
}

pub(crate) fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).context("encoding JSON")?
    );
    Ok(())
}
