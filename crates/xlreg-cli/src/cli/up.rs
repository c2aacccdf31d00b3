//! `xlreg up`: a new, uniquely named test cluster in seconds.
//!
//! Without `-- CMD` the members live in this process ([`LocalCluster`]):
//! keys are made on every core (or read from `--key-pool`) together with
//! the embedded registry's own, the registry starts on a free loopback port
//! (unless `--regcred` names another registry), the members boot through
//! the client library,
//! and the table (or `--json`) is printed. Then `up` exits, or with
//! `--keep` keeps the members' endpoints open (each answers a connection
//! with one line naming the member) until Ctrl-C.
//!
//! With `-- CMD ARGS...` it launches one copy of the program per member
//! instead, each with the [`UpEnv`] variables and a prepared node
//! directory, watches the registry until all have joined, prints the
//! table, and stays until Ctrl-C or until every copy has exited. Copies run
//! in their own process groups; on exit `up` sends each group SIGTERM, then
//! SIGKILL after [`GRACE`]. Their output goes to stderr, each line prefixed
//! with the member name.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cli::cred::load_cred;
use crate::cli::serve::Signals;
use crate::cli::{runtime, BadInput};
use xlreg::client::{BootOptions, ClientOptions, ClusterView, MemberInfo};
use xlreg::regcred::RegCred;
use xlreg::server::{ServerConfig, ServerIdentity};
use xlreg::testing::{
    self, member_identity, member_name, KeyGen, KeySource, LaunchOptions, LocalCluster,
    LocalRegistry, Observer, Progress, Timings, UpEnv,
};
use xlreg::wire::NodeId;

/// Time the launched programs get between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// Arguments of `xlreg up`.
#[derive(Args, Debug)]
#[command(after_help = "\
Without -- CMD, the members run in this process; up prints the cluster and
exits (or with --keep serves until Ctrl-C). With -- CMD ARGS..., up starts
one copy of CMD per member, each with its identity prepared in a node
directory and these variables set:

  XLREG_REGCRED         the registry's regCred.dat
  XLREG_CLUSTER_NAME    XLREG_CLUSTER_ID (40 hex)    XLREG_CLUSTER_SIZE
  XLREG_MEMBER_NAME     XLREG_MEMBER_INDEX (0..N, launch order)
  XLREG_ENDPOINTS       free 127.0.0.1 ports to listen on, comma-separated
  XLREG_NODE_DIR        the member's identity (node.json, two keys)

A Rust program joins with xlreg::testing::UpEnv::from_env()?.boot(..); any
program can run `xlreg join --node-dir \"$XLREG_NODE_DIR\" --cluster-id
\"$XLREG_CLUSTER_ID\"`. up waits until all have joined, prints the cluster,
and stays until Ctrl-C or until every copy has exited; then it sends each
copy's process group SIGTERM (SIGKILL 5 s later). Their output appears on
stderr prefixed with the member name.")]
pub struct UpArgs {
    /// Number of members, 2..=64.
    #[arg(long, short = 'n', value_name = "N")]
    pub size: u32,
    /// Endpoints per member (the cluster's EndPointCount), 1..=16: real
    /// free ports on 127.0.0.1.
    #[arg(long, value_name = "K", default_value_t = testing::DEFAULT_ENDPOINTS)]
    pub endpoints: u32,
    /// RSA key size of the members' keys.
    #[arg(long, value_name = "BITS", default_value_t = 2048,
          value_parser = parse_key_bits)]
    pub key_bits: u32,
    /// Use the registry of this regCred.dat (an xlreg or a Go one) instead
    /// of starting one in this process.
    #[arg(long, value_name = "FILE")]
    pub regcred: Option<PathBuf>,
    /// Cluster name (default `up-<8 random hex digits>`).
    #[arg(long)]
    pub name: Option<String>,
    /// Print the cluster view as JSON, with "timings" and "regcred" added.
    #[arg(long)]
    pub json: bool,
    /// Keep the members and the registry running until Ctrl-C (in-process
    /// members; with `-- CMD` up always stays).
    #[arg(long)]
    pub keep: bool,
    /// Take member keys from this directory of pre-generated test keys,
    /// adding any missing: repeated runs skip key generation. Keys are
    /// distinct within a cluster but reused by every run.
    #[arg(long, value_name = "DIR", env = "XLREG_KEY_POOL")]
    pub key_pool: Option<PathBuf>,
    /// Generate ordinary two-prime keys (about 3x slower for 2048 bits)
    /// instead of OpenSSL three-prime test keys.
    #[arg(long)]
    pub strict_keygen: bool,
    /// Seconds to wait for all members to join.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub wait: f64,
    /// Launch this program once per member instead of in-process members
    /// (after `--`, with its arguments).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Run `xlreg up`.
pub fn run(a: UpArgs) -> anyhow::Result<()> {
    testing::check_shape(a.size, a.endpoints).map_err(|e| BadInput(e.to_string()))?;
    if !(a.wait.is_finite() && a.wait > 0.0 && a.wait <= 86_400.0) {
        bail!(BadInput(format!("--wait {} must be in (0, 86400]", a.wait)));
    }
    if let Some(n) = &a.name {
        if n.is_empty() || n.len() > 256 || n.chars().any(char::is_control) {
            bail!(BadInput(format!(
                "--name {n:?}: 1 to 256 bytes, no control characters"
            )));
        }
    }
    let external = match &a.regcred {
        Some(p) => {
            let rc = load_cred(p)?;
            let abs = std::path::absolute(p)
                .with_context(|| format!("cannot resolve {}", p.display()))?;
            Some((rc, abs))
        }
        None => None,
    };
    let ui = Ui::new(!a.json && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    runtime()?.block_on(async move {
        // Handlers first, so that Ctrl-C at any point stops up cleanly.
        let signal = Signals::install()?.wait();
        if a.command.is_empty() {
            in_process(a, external, ui, signal).await
        } else {
            with_command(a, external, ui, signal).await
        }
    })
}

fn parse_key_bits(s: &str) -> Result<u32, String> {
    match s {
        "1024" => Ok(1024),
        "2048" => Ok(2048),
        _ => Err("1024 or 2048".into()),
    }
}

fn key_gen(a: &UpArgs) -> KeyGen {
    if a.strict_keygen {
        KeyGen::OpenSsl
    } else {
        KeyGen::Fast
    }
}

fn boot_options(a: &UpArgs) -> BootOptions {
    BootOptions {
        wait: Some(Duration::from_secs_f64(a.wait)),
        ..BootOptions::default()
    }
}

async fn in_process(
    a: UpArgs,
    external: Option<(RegCred, PathBuf)>,
    ui: Ui,
    signal: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let opts = LaunchOptions {
        size: a.size,
        endpoints: a.endpoints,
        key_bits: a.key_bits,
        key_gen: key_gen(&a),
        key_pool: a.key_pool.clone(),
        name: Some(a.name.clone().unwrap_or_else(|| testing::unique_name("up"))),
        regcred: external.as_ref().map(|(rc, _)| rc.clone()),
        boot: boot_options(&a),
        observer: ui.observer(),
        ..LaunchOptions::default()
    };
    tokio::pin!(signal);
    let cluster = tokio::select! {
        r = LocalCluster::launch_with(opts) => r,
        _ = &mut signal => {
            ui.clear();
            bail!("interrupted before the cluster was complete");
        }
    };
    ui.clear();
    let cluster = cluster.map_err(anyhow::Error::new)?;
    let regcred_path = match (&external, cluster.registry()) {
        (Some((_, p)), _) => Some(p.clone()),
        (None, Some(r)) => Some(r.regcred_path().to_path_buf()),
        (None, None) => None,
    };
    let report = Report {
        view: cluster.view().clone(),
        timings: cluster.timings,
        key_bits: a.key_bits,
        keys_reused: cluster.keys_reused,
        keys_generated: cluster.keys_generated,
        registry: registry_line(cluster.regcred(), cluster.registry().is_some()),
        regcred_path,
    };
    report.print(a.json);
    if a.keep {
        let mut greeters = tokio::task::JoinSet::new();
        for m in &cluster.members {
            for l in m.listeners() {
                let l = l.try_clone().context("duplicating a listening socket")?;
                let line = format!(
                    "xlreg up: member {} (slot {}) of cluster {} {}\n",
                    m.identity.name,
                    m.index(),
                    cluster.name,
                    cluster.id()
                );
                greeters.spawn(greet(l, line));
            }
        }
        eprintln!(
            "{} members and the registry are serving; Ctrl-C stops them",
            cluster.members.len()
        );
        signal.await;
        greeters.shutdown().await;
    }
    cluster.shutdown().await;
    Ok(())
}

/// Answer every connection to a member's endpoint with one line.
async fn greet(l: std::net::TcpListener, line: String) {
    let l = match l
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(l))
    {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot serve a member endpoint: {e}");
            return;
        }
    };
    loop {
        if let Ok((mut s, _)) = l.accept().await {
            let _ =
                tokio::time::timeout(Duration::from_secs(1), s.write_all(line.as_bytes())).await;
        }
    }
}

async fn with_command(
    a: UpArgs,
    external: Option<(RegCred, PathBuf)>,
    ui: Ui,
    signal: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(signal);
    let t0 = Instant::now();
    let n = a.size as usize;
    let work = tempfile::Builder::new()
        .prefix("xlreg-up-")
        .tempdir()
        .context("cannot create a working directory")?;
    let threads = testing::keys::default_threads();
    let src = KeySource {
        bits: a.key_bits,
        gen: key_gen(&a),
        pool: a.key_pool.clone(),
        threads,
    };
    // admin 2, reader 2, and the embedded registry 2.
    let aux = 4 + if external.is_none() { 2 } else { 0 };
    let obs = ui.observer();
    let keys = tokio::task::spawn_blocking(move || src.acquire(2 * n, aux, &obs));
    let mut keys = tokio::select! {
        k = keys => k.context("key generation task")??,
        _ = &mut signal => {
            ui.clear();
            bail!("interrupted while making keys");
        }
    };
    let keygen = t0.elapsed();
    let mut aux_key = || keys.aux.pop().expect("aux key");

    let (registry, regcred, regcred_path) = match external {
        Some((rc, p)) => (None, rc, p),
        None => {
            let cfg = ServerConfig {
                identity: Some(ServerIdentity {
                    id: NodeId::random(),
                    comms: aux_key(),
                    sig: aux_key(),
                }),
                regcred_path: Some(work.path().join("regCred.dat")),
                ..ServerConfig::ephemeral()
            };
            let r = LocalRegistry::start_with(cfg).await?;
            let (rc, p) = (r.regcred().clone(), r.regcred_path().to_path_buf());
            (Some(r), rc, p)
        }
    };
    let t1 = Instant::now();
    let client = ClientOptions::default();
    let name = a.name.clone().unwrap_or_else(|| testing::unique_name("up"));
    let admin = member_identity("admin", aux_key(), aux_key(), vec![])?;
    let reader = member_identity(
        &testing::unique_name("up-reader"),
        aux_key(),
        aux_key(),
        vec![],
    )?;
    let info = testing::create(
        &regcred,
        &admin,
        &xlreg::client::ClusterSpec::new(name.clone(), a.size).endpoints(a.endpoints),
        &client,
    )
    .await?;
    Observer::emit(
        &ui.observer(),
        Progress::Created {
            id: info.id,
            size: n,
        },
    );

    // Identities with endpoints on free ports, saved in node directories.
    let mut member_keys = keys.member.into_iter();
    let mut envs = Vec::with_capacity(n);
    let mut nodes = Vec::with_capacity(n);
    // All ports at once: bound together, so no two are the same.
    let ports = testing::free_ports(n * a.endpoints as usize)?;
    for (i, ports) in ports.chunks(a.endpoints as usize).enumerate() {
        let endpoints: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mname = member_name(i);
        nodes.push(member_identity(
            &mname,
            member_keys.next().expect("key"),
            member_keys.next().expect("key"),
            endpoints.clone(),
        )?);
        envs.push(UpEnv {
            regcred: regcred_path.clone(),
            cluster_name: name.clone(),
            cluster_id: info.id,
            cluster_size: a.size,
            member_name: mname.clone(),
            member_index: i,
            endpoints,
            node_dir: work.path().join("nodes").join(&mname),
        });
    }
    let dirs: Vec<PathBuf> = envs.iter().map(|e| e.node_dir.clone()).collect();
    tokio::task::spawn_blocking(move || {
        testing::keys::run_parallel(n, threads, &|| {}, |i| nodes[i].clone().save(&dirs[i]))
    })
    .await
    .context("saving node identities")??;

    // Watch the registry while the programs join.
    let deadline = Instant::now() + Duration::from_secs_f64(a.wait);
    let (rc2, obs) = (regcred.clone(), ui.observer());
    let mut watcher = tokio::spawn(async move {
        testing::watch_joins(&rc2, &info.id, n, &reader, &client, deadline, |m| {
            Observer::emit(
                &obs,
                Progress::Joined {
                    index: m.index,
                    name: m.name.clone(),
                },
            )
        })
        .await
    });
    let mut kids = Children::spawn(&a.command, &envs, &ui)?;
    let members = loop {
        tokio::select! {
            r = &mut watcher => match r.context("watching the joins")? {
                Ok(m) => break m,
                Err(e) => {
                    ui.clear();
                    kids.stop().await;
                    let hint = if e.server_text().is_some_and(|t| t.contains("invalid msg type")) {
                        " (up -- CMD watches the joins by reading the cluster without \
                         joining it, which a Go registry does not allow)"
                    } else {
                        ""
                    };
                    bail!("waiting for {n} members to join cluster {name:?}: {}{hint}", xlreg::ErrorChain(&e));
                }
            },
            Some((i, st)) = kids.exits.recv() => {
                let failed = kids.record(i, st);
                if let Some(why) = failed {
                    ui.clear();
                    kids.stop().await;
                    bail!("{why} before the cluster was complete");
                }
            }
            _ = &mut signal => {
                ui.clear();
                kids.stop().await;
                bail!("interrupted before the cluster was complete");
            }
        }
    };
    ui.clear();
    let view = ClusterView {
        cluster_id: info.id,
        cluster_name: Some(name.clone()),
        max_size: info.max_size,
        endpoint_count: info.endpoint_count,
        attrs: info.attrs,
        self_index: 0,
        members,
    };
    let timings = Timings {
        keygen,
        formation: t1.elapsed(),
        total: t0.elapsed(),
    };
    Report {
        view,
        timings,
        key_bits: a.key_bits,
        keys_reused: keys.reused,
        keys_generated: keys.generated,
        registry: registry_line(&regcred, registry.is_some()),
        regcred_path: Some(regcred_path),
    }
    .print(a.json);
    if kids.running() > 0 {
        eprintln!(
            "{} of {n} members running; Ctrl-C stops them",
            kids.running()
        );
        loop {
            tokio::select! {
                Some((i, st)) = kids.exits.recv() => {
                    kids.record(i, st);
                    if kids.running() == 0 {
                        break;
                    }
                }
                _ = &mut signal => break,
            }
        }
    }
    kids.stop().await;
    if let Some(r) = registry {
        r.stop().await;
    }
    let failed = kids.failures();
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

fn registry_line(rc: &RegCred, embedded: bool) -> String {
    format!(
        "{} ({})",
        rc.endpoints.first().map(String::as_str).unwrap_or("?"),
        if embedded {
            "embedded, in memory"
        } else {
            "external"
        }
    )
}

/// What `up` prints once the cluster is complete.
struct Report {
    view: ClusterView,
    timings: Timings,
    key_bits: u32,
    keys_reused: usize,
    keys_generated: usize,
    registry: String,
    regcred_path: Option<PathBuf>,
}

impl Report {
    fn print(&self, json: bool) {
        if json {
            let mut j = self.view.to_json();
            if let Some(o) = j.as_object_mut() {
                o.insert("timings".into(), self.timings.to_json());
                o.insert(
                    "regcred".into(),
                    self.regcred_path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .into(),
                );
            }
            println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
            return;
        }
        let v = &self.view;
        println!(
            "cluster   {} {}",
            v.cluster_name.as_deref().unwrap_or("-"),
            v.cluster_id
        );
        println!(
            "members   {} of {}, {} endpoint(s) each, RSA-{} keys",
            v.members.len(),
            v.max_size,
            v.endpoint_count,
            self.key_bits
        );
        println!("registry  {}", self.registry);
        if let Some(p) = &self.regcred_path {
            println!("regcred   {}", p.display());
        }
        println!();
        print!("{}", table(&v.members));
        println!();
        let t = &self.timings;
        let keys = match (self.keys_reused, self.keys_generated) {
            (0, g) => format!("{g} generated"),
            (r, 0) => format!("{r} from the pool"),
            (r, g) => format!("{r} from the pool, {g} generated"),
        };
        println!(
            "time      keys {:.3} s ({keys}) + formation {:.3} s = total {:.3} s",
            t.keygen.as_secs_f64(),
            t.formation.as_secs_f64(),
            t.total.as_secs_f64()
        );
    }
}

/// Members as a table: slot, name, ID, endpoints, key fingerprints (the
/// first 16 hex digits of the SHA-256 of the SPKI DER).
pub fn table(members: &[MemberInfo]) -> String {
    let mut rows = vec![[
        "IDX".to_string(),
        "NAME".into(),
        "ID".into(),
        "ENDPOINTS".into(),
        "COMMS KEY".into(),
        "SIG KEY".into(),
    ]];
    for m in members {
        rows.push([
            m.index.to_string(),
            m.name.clone(),
            m.id.to_hex(),
            m.endpoints.join(","),
            m.comms_key.fingerprint()[..16].to_string(),
            m.sig_key.fingerprint()[..16].to_string(),
        ]);
    }
    let w: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line = format!(
            "{:>w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:<w4$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4],
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Progress bars on stderr (keys, then joins), or nothing.
#[derive(Clone)]
struct Ui {
    mp: Option<MultiProgress>,
    keys: ProgressBar,
    joins: ProgressBar,
}

impl Ui {
    fn new(enabled: bool) -> Self {
        if !enabled {
            return Ui {
                mp: None,
                keys: ProgressBar::hidden(),
                joins: ProgressBar::hidden(),
            };
        }
        let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{prefix:>5} [{bar:32}] {pos:>3}/{len:3} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let keys = mp.add(
            ProgressBar::new(0)
                .with_style(style.clone())
                .with_prefix("keys"),
        );
        let joins = mp.add(ProgressBar::new(0).with_style(style).with_prefix("joins"));
        Ui {
            mp: Some(mp),
            keys,
            joins,
        }
    }

    fn observer(&self) -> Option<Observer> {
        self.mp.as_ref()?;
        let (keys, joins) = (self.keys.clone(), self.joins.clone());
        Some(Observer::new(move |p| match p {
            Progress::KeysNeeded(n) => keys.set_length(n as u64),
            Progress::Key => keys.inc(1),
            Progress::KeysReady { reused, generated } => keys.finish_with_message(match reused {
                0 => format!("({generated} new)"),
                r => format!("({r} from the pool, {generated} new)"),
            }),
            Progress::Created { size, .. } => joins.set_length(size as u64),
            Progress::Joined { name, .. } => {
                joins.inc(1);
                joins.set_message(name);
            }
            Progress::Booted { .. } => {}
        }))
    }

    /// A line on stderr that does not tear the bars.
    fn line(&self, s: &str) {
        match &self.mp {
            Some(mp) => mp.suspend(|| eprintln!("{s}")),
            None => eprintln!("{s}"),
        }
    }

    fn clear(&self) {
        if let Some(mp) = &self.mp {
            self.keys.finish_and_clear();
            self.joins.finish_and_clear();
            let _ = mp.clear();
        }
    }
}

/// The launched programs.
struct Children {
    names: Vec<String>,
    /// Process (group) ID while running.
    pids: Vec<Option<i32>>,
    statuses: Vec<Option<String>>,
    exits: mpsc::UnboundedReceiver<(usize, std::io::Result<ExitStatus>)>,
    tasks: tokio::task::JoinSet<()>,
}

impl Children {
    fn spawn(cmd: &[String], envs: &[UpEnv], ui: &Ui) -> anyhow::Result<Self> {
        let (tx, exits) = mpsc::unbounded_channel();
        let mut kids = Children {
            names: Vec::new(),
            pids: Vec::new(),
            statuses: Vec::new(),
            exits,
            tasks: tokio::task::JoinSet::new(),
        };
        for (i, env) in envs.iter().enumerate() {
            let mut c = tokio::process::Command::new(&cmd[0]);
            c.args(&cmd[1..])
                .envs(env.vars())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .process_group(0);
            // SAFETY: prctl is async-signal-safe; nothing else runs here.
            // The child gets SIGTERM if up dies without cleaning up.
            unsafe {
                c.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
            let mut child = match c.spawn() {
                Ok(ch) => ch,
                Err(e) => {
                    let err = BadInput(format!("cannot run {}: {e}", Path::new(&cmd[0]).display()));
                    kids.kill_all(libc::SIGKILL);
                    return Err(err.into());
                }
            };
            let name = env.member_name.clone();
            if let Some(out) = child.stdout.take() {
                kids.tasks.spawn(forward(out, name.clone(), ui.clone()));
            }
            if let Some(err) = child.stderr.take() {
                kids.tasks.spawn(forward(err, name.clone(), ui.clone()));
            }
            kids.pids.push(child.id().map(|p| p as i32));
            kids.names.push(name);
            kids.statuses.push(None);
            let tx = tx.clone();
            kids.tasks.spawn(async move {
                let st = child.wait().await;
                let _ = tx.send((i, st));
            });
        }
        Ok(kids)
    }

    fn running(&self) -> usize {
        self.pids.iter().filter(|p| p.is_some()).count()
    }

    /// Note an exit; returns a description if it was a failure.
    fn record(&mut self, i: usize, st: std::io::Result<ExitStatus>) -> Option<String> {
        self.pids[i] = None;
        let why = match st {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!("member {} exited with {s}", self.names[i])),
            Err(e) => Some(format!(
                "member {}: waiting for it failed: {e}",
                self.names[i]
            )),
        };
        if let Some(w) = &why {
            eprintln!("xlreg up: {w}");
        }
        self.statuses[i] = Some(why.clone().unwrap_or_default());
        why
    }

    fn failures(&self) -> Vec<String> {
        self.statuses
            .iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect()
    }

    fn kill_all(&self, sig: i32) {
        for pid in self.pids.iter().flatten() {
            // SAFETY: plain syscall; -pid is the child's own process group
            // (the child is still unreaped, so the ID is still ours).
            unsafe {
                libc::kill(-pid, sig);
            }
        }
    }

    /// SIGTERM to every running program's group, SIGKILL after [`GRACE`],
    /// and reap them all.
    async fn stop(&mut self) {
        let mut tries = [
            (libc::SIGTERM, GRACE),
            (libc::SIGKILL, Duration::from_secs(5)),
        ]
        .into_iter();
        while self.running() > 0 {
            let Some((sig, wait)) = tries.next() else {
                eprintln!("xlreg up: {} members did not stop", self.running());
                break;
            };
            self.kill_all(sig);
            let deadline = Instant::now() + wait;
            while self.running() > 0 {
                match tokio::time::timeout_at(deadline, self.exits.recv()).await {
                    Ok(Some((i, st))) => {
                        // Exits by our signal are not failures.
                        self.pids[i] = None;
                        match st {
                            Ok(s) if s.success() || s.code().is_none() => {
                                self.statuses[i] = Some(String::new())
                            }
                            other => {
                                self.record(i, other);
                            }
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        // The programs are gone: let their last lines reach stderr (the
        // forwarders end at EOF), unless something else holds the pipes.
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Copy a program's output to stderr, each line prefixed with its name.
async fn forward(r: impl tokio::io::AsyncRead + Unpin, name: String, ui: Ui) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        ui.line(&format!("[{name}] {l}"));
    }
}
