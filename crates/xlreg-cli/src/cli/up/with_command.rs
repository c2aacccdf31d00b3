//! `xlreg up -- CMD`: one copy of a program per member, each with its
//! identity prepared; up watches the registry until all have joined.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::time::Instant;
use xlreg::client::{ClientError, ClientOptions, ClusterView, MemberInfo, NodeIdentity};
use xlreg::regcred::RegCred;
use xlreg::server::{ServerConfig, ServerIdentity};
use xlreg::testing::{
    self, member_identity, member_name, KeySource, LocalRegistry, Observer, Progress, Timings,
    UpEnv,
};
use xlreg::wire::NodeId;

use super::args::{key_gen, UpArgs};
use super::change::Changer;
use super::children::{Children, SpawnOptions};
use super::control::Control;
use super::report::{registry_line, Report};
use super::ui::Ui;

/// Run `xlreg up -- CMD`: keys, registry, cluster, member directories,
/// programs; then wait for the joins, print, and stay.
pub(super) async fn run(
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
            let identity = ServerIdentity {
                id: NodeId::random(),
                comms: aux_key(),
                sig: aux_key(),
            };
            let r = start_registry(identity, work.path().join("regCred.dat")).await?;
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
        &xlreg::client::ClusterSpec::new(name.clone(), a.size)
            .endpoints(a.endpoints)
            .ttl(super::shared::cluster_ttl(&a)),
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
    let cluster = ClusterPlace {
        regcred_path: regcred_path.clone(),
        name: name.clone(),
        id: info.id,
        size: a.size,
        endpoints: a.endpoints,
    };
    let (envs, nodes, sockets) = prepare_members(
        &cluster,
        keys.member,
        &work.path().join("nodes"),
        threads,
        a.listen_fds,
    )
    .await?;
    // Member i takes slot i now, so XLREG_MEMBER_INDEX is its slot.
    super::slots::reserve(&regcred, info.id, &nodes, &client)
        .await
        .with_context(|| format!("reserving the members' slots in cluster {name:?}"))?;
    let names: Vec<(usize, String)> = envs
        .iter()
        .map(|e| (e.member_index, e.member_name.clone()))
        .collect();
    let changer = Changer {
        regcred: regcred.clone(),
        regcred_path: regcred_path.clone(),
        cluster: info.id,
        name: name.clone(),
        admin,
        reader: reader.clone(),
        client: client.clone(),
        key_bits: a.key_bits,
        key_gen: key_gen(&a),
        endpoints: a.endpoints,
        nodes_dir: work.path().join("nodes"),
        listen_fds: a.listen_fds,
        faults: a.faults,
        wait: Duration::from_secs_f64(a.wait),
        size: a.size,
        started: 0,
    };
    // The control socket of `xlreg fault`: always (membership changes,
    // process faults), with the proxies under --faults.
    let (mut control, extra_env) = match Control::start(&name, &envs, &ui, a.faults, changer) {
        Ok((c, extra)) => (Some(c), extra),
        Err(e) if !a.faults => {
            eprintln!("xlreg up: no control socket for `xlreg fault`: {e:#}");
            (None, vec![])
        }
        Err(e) => return Err(e),
    };

    // Watch the registry while the programs join.
    let deadline = Instant::now() + Duration::from_secs_f64(a.wait);
    let (rc2, obs) = (regcred.clone(), ui.observer());
    let check = JoinCheck {
        regcred: regcred.clone(),
        cluster: info.id,
        reader: reader.clone(),
        client: client.clone(),
    };
    let watcher = tokio::spawn(async move {
        super::slots::watch(&rc2, info.id, &names, &reader, &client, deadline, |m| {
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
    let spawn = SpawnOptions {
        extra_env,
        listen_fds: a.listen_fds,
        // A paused program would ignore SIGTERM if up died.
        death_signal: if a.faults {
            libc::SIGKILL
        } else {
            libc::SIGTERM
        },
    };
    let mut kids = Children::spawn(&a.command, &envs, &sockets, &ui, spawn)?;
    // The programs hold the sockets now: a program that dies closes its
    // endpoints, as one that bound them itself would.
    drop(sockets);
    let members = match wait_for_joins(watcher, &mut kids, &check, &mut signal).await {
        Ok(m) => m,
        Err(e) => {
            ui.clear();
            kids.stop().await;
            bail!("{e} (cluster {name:?})");
        }
    };
    ui.clear();
    Report {
        view: ClusterView {
            cluster_id: info.id,
            cluster_name: Some(name.clone()),
            max_size: info.max_size,
            endpoint_count: info.endpoint_count,
            attrs: info.attrs,
            self_index: 0,
            members,
            version: 0,
        },
        timings: Timings {
            keygen,
            formation: t1.elapsed(),
            total: t0.elapsed(),
        },
        key_bits: a.key_bits,
        keys_reused: keys.reused,
        keys_generated: keys.generated,
        registry: registry_line(&regcred, registry.is_some()),
        regcred_path: Some(regcred_path),
    }
    .print(a.json);
    let nemesis = match &control {
        Some(c) => {
            eprintln!(
                "xlreg up: {}: xlreg fault --cluster {name} ACTION (control socket {})",
                match c.net {
                    Some(_) => "faults on",
                    None => "replace I, evict I, resize N, kill I, restart I",
                },
                c.path.display()
            );
            c.net.as_ref().and_then(|net| {
                a.nemesis.map(|kind| {
                    let seed = a.seed.unwrap_or_else(rand_seed);
                    eprintln!(
                        "xlreg up: nemesis {} every {:?}, seed {seed} (--seed {seed} replays it)",
                        nemesis_name(kind),
                        a.every
                    );
                    net.faults.nemesis(kind, a.every, seed)
                })
            })
        }
        None => None,
    };
    stay_while_running(&mut kids, &mut signal, n, control.as_mut(), &ui).await;
    if let Some(nem) = nemesis {
        nem.stop().await;
    }
    kids.stop().await;
    if registry.is_none() && !a.keep {
        // As member 0, whose identity the program loaded from its dir (a
        // replacement's, if slot 0 was replaced).
        match xlreg::client::NodeIdentity::load(&kids.env(0).node_dir) {
            Ok(first) => {
                super::shared::delete_from_shared(&regcred, &first, cluster.id, &name).await
            }
            Err(e) => {
                eprintln!("xlreg up: warning: cluster {name} left on the shared registry ({e})")
            }
        }
    }
    if let Some(r) = registry {
        r.stop().await;
    }
    let failed = kids.failures();
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

/// The embedded registry, in memory, writing its regCred to `regcred`.
async fn start_registry(
    identity: ServerIdentity,
    regcred: PathBuf,
) -> anyhow::Result<LocalRegistry> {
    let cfg = ServerConfig {
        identity: Some(identity),
        regcred_path: Some(regcred),
        ..ServerConfig::ephemeral()
    };
    Ok(LocalRegistry::start_with(cfg).await?)
}

/// Where the members go.
struct ClusterPlace {
    regcred_path: PathBuf,
    name: String,
    id: NodeId,
    size: u32,
    endpoints: u32,
}

/// Member identities with endpoints on free ports, saved in node
/// directories under `nodes`; returns each member's environment, identity
/// and (with `listen`) its endpoint sockets, bound and listening, for the
/// program to inherit.
async fn prepare_members(
    c: &ClusterPlace,
    keys: Vec<xlreg::wire::PrivateKey>,
    nodes_dir: &std::path::Path,
    threads: usize,
    listen: bool,
) -> anyhow::Result<(
    Vec<UpEnv>,
    Vec<NodeIdentity>,
    Vec<Vec<std::net::TcpListener>>,
)> {
    let n = c.size as usize;
    let k = c.endpoints as usize;
    let mut member_keys = keys.into_iter();
    let mut envs = Vec::with_capacity(n);
    let mut nodes = Vec::with_capacity(n);
    let mut sockets: Vec<Vec<std::net::TcpListener>> = (0..n).map(|_| Vec::new()).collect();
    // All ports at once: bound together, so no two are the same. Without
    // --listen-fds they are released for the programs to bind (a small
    // race with other processes); with it the programs inherit them.
    let ports = if listen {
        let ls = testing::bind_endpoints(n * k)?;
        let mut ports = Vec::with_capacity(ls.len());
        for (j, l) in ls.into_iter().enumerate() {
            // Blocking, as a socket-activated program expects.
            l.set_nonblocking(false).context("listening socket")?;
            ports.push(l.local_addr().context("listening socket")?.port());
            sockets[j / k].push(l);
        }
        ports
    } else {
        testing::free_ports(n * k)?
    };
    for (i, ports) in ports.chunks(k).enumerate() {
        let endpoints: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mname = member_name(i);
        nodes.push(member_identity(
            &mname,
            member_keys.next().expect("key"),
            member_keys.next().expect("key"),
            endpoints.clone(),
        )?);
        envs.push(UpEnv {
            regcred: c.regcred_path.clone(),
            cluster_name: c.name.clone(),
            cluster_id: c.id,
            cluster_size: c.size,
            member_name: mname.clone(),
            member_index: i,
            endpoints,
            node_dir: nodes_dir.join(&mname),
        });
    }
    let dirs: Vec<PathBuf> = envs.iter().map(|e| e.node_dir.clone()).collect();
    let saved = nodes.clone();
    tokio::task::spawn_blocking(move || {
        testing::keys::run_parallel(n, threads, &|| {}, |i| saved[i].clone().save(&dirs[i]))
    })
    .await
    .context("saving node identities")??;
    Ok((envs, nodes, sockets))
}

/// What [`wait_for_joins`] needs to ask whether a program that exited had
/// joined.
struct JoinCheck {
    regcred: RegCred,
    cluster: NodeId,
    reader: NodeIdentity,
    client: ClientOptions,
}

/// Until every member joined: the members, or why not (a program failed
/// or exited without joining, the wait ran out, Ctrl-C).
async fn wait_for_joins(
    mut watcher: tokio::task::JoinHandle<Result<Vec<MemberInfo>, ClientError>>,
    kids: &mut Children,
    check: &JoinCheck,
    signal: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> anyhow::Result<Vec<MemberInfo>> {
    loop {
        tokio::select! {
            r = &mut watcher => return match r.context("watching the joins")? {
                Ok(m) => Ok(m),
                Err(e) => {
                    let hint = if e.server_text().is_some_and(|t| t.contains("invalid msg type")) {
                        " (up -- CMD watches the joins by reading the cluster without \
                         joining it, which a Go registry does not allow)"
                    } else {
                        ""
                    };
                    bail!("waiting for the members to join: {}{hint}", xlreg::ErrorChain(&e))
                }
            },
            Some((i, st)) = kids.next_exit() => {
                // Reported at once: a failure, or a clean exit of a program
                // that never joined (the others would wait for it in vain).
                let clean = matches!(&st, Ok(s) if s.success());
                let why = kids.record(i, st);
                let c = check;
                if !clean {
                    bail!("{why} before the cluster was complete");
                }
                match super::slots::has_joined(&c.regcred, c.cluster, i, &c.reader, &c.client).await {
                    Ok(true) => {}
                    Ok(false) => bail!("{why} before joining (the cluster cannot complete)"),
                    Err(e) => bail!("{why}; asking whether it joined: {}", xlreg::ErrorChain(&e)),
                }
            }
            _ = signal.as_mut() => bail!("interrupted before the cluster was complete"),
        }
    }
}

/// After the report: stay until every program exited or Ctrl-C (with
/// `--faults`, also serving `xlreg fault`; a member killed by it keeps
/// up running until it is restarted).
async fn stay_while_running(
    kids: &mut Children,
    signal: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    n: usize,
    mut control: Option<&mut Control>,
    ui: &Ui,
) {
    let done = |kids: &Children, c: &Option<&mut Control>| {
        kids.running() == 0 && !kids.awaiting_restart() && !c.as_ref().is_some_and(|c| c.busy())
    };
    if done(kids, &control) {
        return;
    }
    eprintln!(
        "{} of {n} members running; Ctrl-C stops them",
        kids.running()
    );
    loop {
        let req = async {
            match control.as_mut() {
                Some(c) => c.requests.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some((i, st)) = kids.next_exit() => {
                let _ = kids.record(i, st);
                if let Some(c) = control.as_mut() {
                    c.exited(kids, ui, i).await;
                }
                if done(kids, &control) {
                    return;
                }
            }
            Some(r) = req => {
                if let Some(c) = control.as_mut() {
                    c.handle(kids, ui, r).await;
                }
            }
            _ = signal.as_mut() => return,
        }
    }
}

fn nemesis_name(k: xlreg::testing::faults::NemesisKind) -> &'static str {
    match k {
        xlreg::testing::faults::NemesisKind::PartitionHalves => "partition-halves",
        xlreg::testing::faults::NemesisKind::IsolateOne => "isolate-one",
    }
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
        % 1_000_000_007
}
