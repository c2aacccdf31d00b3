//! The database's own failover, as a tested promise: a PostgreSQL primary
//! with a synchronous streaming standby, two registry servers on the
//! two-host URL `postgres://…@127.0.0.1:P1,127.0.0.1:P2/xlreg?target_session_attrs=read-write`,
//! 10 acknowledged joins, the primary stopped hard (`-m immediate`), the
//! standby promoted and its synchronous setting cleared as an operator
//! would. Then every acknowledged join is present, both servers answer
//! within a bounded time without a restart, and a client that was booting
//! while the database was down gets its member in by retrying.
//!
//! The test starts its own two PostgreSQL instances (ports 56000–56999,
//! its own temp dir, as the `postgres` user when run as root) from
//! `XLREG_PG_BIN` or the newest `/usr/lib/postgresql/*/bin`. Without those
//! binaries it prints `SKIPPED:` and passes, unless
//! `XLREG_REQUIRE_POSTGRES=1` (CI), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xlreg::client::{
    boot, create_cluster, read_members, BootOptions, ClientOptions, ClusterRef, ClusterSpec,
};
use xlreg::registry::postgres::{DbUrl, PoolOptions};
use xlreg::server::ServerConfig;
use xlreg::testing::postgres::members;
use xlreg::testing::postgres::PgGroup;
use xlreg::wire::NodeId;

/// Every wait in this test ends by this bound.
const BOUND: Duration = Duration::from_secs(60);

/// The PostgreSQL bin dir with initdb, pg_ctl, pg_basebackup and psql.
fn pg_bin() -> Option<PathBuf> {
    let has_all = |d: &Path| {
        ["initdb", "pg_ctl", "pg_basebackup", "psql"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Ok(d) = std::env::var("XLREG_PG_BIN") {
        let d = PathBuf::from(d);
        if has_all(&d) {
            return Some(d);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_all(&bin).then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

fn skip(why: &str) {
    if std::env::var("XLREG_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("postgres failover: {why}, but XLREG_REQUIRE_POSTGRES=1: PostgreSQL is required");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: postgres failover: {why} (install postgresql or set XLREG_PG_BIN)"
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Two free TCP ports on 127.0.0.1 in 56000–56999 (free when probed).
fn free_ports() -> (u16, u16) {
    let start = 56000 + (std::process::id() % 500) as u16 * 2;
    let mut got = Vec::new();
    for i in 0..1000u16 {
        let p = 56000 + (start - 56000 + i) % 1000;
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            got.push(p);
            if got.len() == 2 {
                return (got[0], got[1]);
            }
        }
    }
    panic!("no two free ports in 56000-56999");
}

/// A primary and its standby, in one temp dir; stopped and removed on drop.
struct Pair {
    bin: PathBuf,
    dir: PathBuf,
    ports: (u16, u16),
    as_postgres: bool,
}

impl Pair {
    /// Run `args` (a PostgreSQL program and its arguments, each quoted
    /// safely: only paths and fixed words), as `postgres` when root.
    fn run(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        let exe = self.bin.join(prog);
        let mut cmd = if self.as_postgres {
            let mut line = format!("exec '{}'", exe.display());
            for a in args {
                line.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
            }
            let mut c = Command::new("su");
            c.args(["postgres", "-s", "/bin/sh", "-c", &line]);
            c
        } else {
            let mut c = Command::new(&exe);
            c.args(args);
            c
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {prog}: {e}"))?;
        // Bounded: a statement that waits for a standby never returns.
        let until = Instant::now() + BOUND;
        while child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{prog} {args:?} still running after {BOUND:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{prog} {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn data(&self, which: &str) -> String {
        self.dir.join(which).display().to_string()
    }

    fn log(&self, which: &str) -> String {
        self.dir.join(format!("{which}.log")).display().to_string()
    }

    fn psql(&self, port: u16, sql: &str) -> Result<String, String> {
        let sock = self.dir.display().to_string();
        let port = port.to_string();
        self.run(
            "psql",
            &[
                "-h",
                &sock,
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        )
    }

    fn start(&self, which: &str) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(which),
                "-l",
                &self.log(which),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .map(drop)
        .map_err(|e| {
            let log = std::fs::read_to_string(self.log(which)).unwrap_or_default();
            format!("{e}\n{which} log:\n{log}")
        })
    }

    /// initdb the primary, start it, clone the standby with
    /// `pg_basebackup -R`, start it, and wait until the primary reports
    /// it as its synchronous standby.
    fn create(bin: PathBuf) -> Result<Pair, String> {
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("xlreg-failover.")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        let pair = Pair {
            bin,
            dir,
            ports: free_ports(),
            as_postgres,
        };
        if as_postgres {
            let st = Command::new("chown")
                .args(["postgres:", &pair.dir.display().to_string()])
                .status()
                .map_err(|e| e.to_string())?;
            if !st.success() {
                return Err("cannot chown the temp dir to postgres".into());
            }
        }
        let (p1, p2) = pair.ports;
        pair.run(
            "initdb",
            &[
                "-D",
                &pair.data("primary"),
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {p1}\nunix_socket_directories = '{}'\n\
             max_connections = 60\nshared_buffers = 16MB\nwal_level = replica\n\
             max_wal_senders = 4\nsynchronous_commit = on\n",
            pair.dir.display()
        );
        append(&format!("{}/postgresql.conf", pair.data("primary")), &conf)?;
        pair.start("primary")?;
        pair.psql(p1, "CREATE DATABASE xlreg")?;
        pair.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &p1.to_string(),
                "-U",
                "postgres",
                "-D",
                &pair.data("standby"),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
        )?;
        // `-R` wrote primary_conninfo; the standby names itself (its
        // application_name) so the primary's synchronous_standby_names
        // matches it. Both nodes get the same replication settings, as an
        // operator's configuration management would write them: every
        // commit waits until the standby has flushed it.
        let sync = "synchronous_standby_names = 'standby1'\n";
        append(
            &format!("{}/postgresql.conf", pair.data("standby")),
            &format!("\nport = {p2}\ncluster_name = 'standby1'\n{sync}"),
        )?;
        pair.start("standby")?;
        append(&format!("{}/postgresql.conf", pair.data("primary")), sync)?;
        pair.psql(p1, "SELECT pg_reload_conf()")?;
        let until = Instant::now() + BOUND;
        loop {
            let s = pair.psql(
                p1,
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'",
            )?;
            if s.trim() == "sync" {
                return Ok(pair);
            }
            if Instant::now() > until {
                return Err(format!("standby not synchronous after {BOUND:?}: {s:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/xlreg?target_session_attrs=read-write&connect_timeout=2",
            self.ports.0, self.ports.1
        )
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for which in ["primary", "standby"] {
            let _ = self.run(
                "pg_ctl",
                &["-D", &self.data(which), "-m", "immediate", "stop"],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn append(path: &str, text: &str) -> Result<(), String> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{path}: {e}"))
}

/// Server `i` only: no client-side failover to the other server.
fn pinned(g: &PgGroup, i: usize) -> ClientOptions {
    ClientOptions {
        address: Some(g.regcred.endpoints[i].clone()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_joins_survive_promotion_of_a_synchronous_standby_and_servers_answer_without_restart(
) {
    let Some(bin) = pg_bin() else {
        skip("no PostgreSQL binaries (initdb, pg_ctl, pg_basebackup, psql)");
        return;
    };
    if is_root()
        && Command::new("id")
            .arg("postgres")
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
    {
        skip("running as root without a `postgres` user to run PostgreSQL as");
        return;
    }
    let started = Instant::now();
    let pair = tokio::task::spawn_blocking(move || Pair::create(bin))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot start primary + standby: {e}"));
    let pair = std::sync::Arc::new(pair);
    let url = DbUrl::parse(&pair.url()).unwrap();
    let pool = PoolOptions {
        connect_timeout: Duration::from_secs(2),
        wait_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let g = PgGroup::start(&url, 2, ServerConfig::ephemeral(), pool)
        .await
        .expect("two servers on the two-host URL");
    let info = create_cluster(
        &g.regcred,
        &ClusterSpec::new("failover", 16),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    let cluster = ClusterRef::Id(info.id);
    let nodes = members("fo", 14);

    // 10 acknowledged joins, alternating between the two servers.
    let mut acknowledged = Vec::new();
    for (i, node) in nodes[..10].iter().enumerate() {
        let opts = BootOptions {
            client: pinned(&g, i % 2),
            wait: None,
            ..Default::default()
        };
        let view = boot(&g.regcred, &cluster, node, &opts)
            .await
            .unwrap_or_else(|e| panic!("join {i} before the failover: {e}"));
        assert!(view.members.iter().any(|m| m.id == node.id));
        acknowledged.push(node.id);
    }

    // The primary dies hard: no shutdown checkpoint, connections reset.
    let p = tokio::task::spawn_blocking({
        let pair = pair.clone();
        move || {
            pair.run(
                "pg_ctl",
                &["-D", &pair.data("primary"), "-m", "immediate", "stop"],
            )
        }
    })
    .await
    .unwrap();
    p.expect("stop the primary");
    let down = Instant::now();

    // A client booting while there is no primary: it is told the storage
    // failed (nothing applied) and, like any client of a group, tries again.
    let mid_session = {
        let (rc, node, cluster) = (g.regcred.clone(), nodes[10].clone(), cluster.clone());
        tokio::spawn(async move {
            let mut tries = 0;
            loop {
                tries += 1;
                let opts = BootOptions {
                    wait: None,
                    ..Default::default()
                };
                let r = boot(&rc, &cluster, &node, &opts).await;
                match r {
                    Ok(view) => return (view, tries),
                    Err(e) if e.is_failover() && down.elapsed() < BOUND => {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => panic!("mid-session boot after {tries} tries: {e}"),
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The operator promotes the standby, then clears its synchronous
    // setting (copied from the primary by pg_basebackup): with no standby
    // of its own, commits would otherwise wait forever.
    let promoted = tokio::task::spawn_blocking({
        let pair = pair.clone();
        move || {
            let new_primary = pair.ports.1;
            pair.run(
                "pg_ctl",
                &["-D", &pair.data("standby"), "-w", "-t", "60", "promote"],
            )?;
            pair.psql(
                new_primary,
                "ALTER SYSTEM SET synchronous_standby_names = ''",
            )?;
            pair.psql(new_primary, "SELECT pg_reload_conf()")?;
            Ok::<_, String>(Instant::now())
        }
    })
    .await
    .unwrap()
    .expect("promote the standby and clear synchronous_standby_names");

    // Both servers, never restarted, answer a new join within the bound.
    let mut first_answer = Vec::new();
    for (i, node) in nodes[11..13].iter().enumerate() {
        let opts = BootOptions {
            client: pinned(&g, i),
            wait: None,
            ..Default::default()
        };
        let mut tries = 0;
        let view = loop {
            tries += 1;
            match boot(&g.regcred, &cluster, node, &opts).await {
                Ok(v) => break v,
                Err(e) if e.is_failover() && promoted.elapsed() < BOUND => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("server {i} after promotion, try {tries}: {e}"),
            }
        };
        first_answer.push((promoted.elapsed(), tries));
        assert!(view.members.iter().any(|m| m.id == node.id));
        acknowledged.push(node.id);
    }
    let (view, tries) = tokio::time::timeout(BOUND, mid_session)
        .await
        .expect("the mid-session client finished within the bound")
        .unwrap();
    acknowledged.push(nodes[10].id);
    assert!(view.members.iter().any(|m| m.id == nodes[10].id));

    // Every acknowledged join is there, as read through each server.
    for i in 0..2 {
        let list = read_members(&g.regcred, &info.id, &nodes[13], &pinned(&g, i))
            .await
            .unwrap_or_else(|e| panic!("read through server {i}: {e}"));
        let present: Vec<NodeId> = list.members.iter().map(|m| m.id).collect();
        for id in &acknowledged {
            assert!(present.contains(id), "server {i}: acknowledged {id} lost");
        }
        assert_eq!(present.len(), acknowledged.len(), "server {i}: {present:?}");
    }
    eprintln!(
        "failover: {} acknowledged joins present; after promotion server 0 answered in {:?} \
         ({} tries), server 1 in {:?} ({} tries); the mid-session client took {tries} tries; \
         outage {:?}; whole test {:?}",
        acknowledged.len(),
        first_answer[0].0,
        first_answer[0].1,
        first_answer[1].0,
        first_answer[1].1,
        promoted.duration_since(down),
        started.elapsed()
    );
    assert!(
        first_answer
            .iter()
            .all(|(t, _)| *t < Duration::from_secs(30)),
        "servers answered within 30 s of promotion: {first_answer:?}"
    );
    g.shutdown().await;
    drop(pair);
}
