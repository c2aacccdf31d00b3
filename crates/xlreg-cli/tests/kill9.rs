//! `kill -9` under load: several clients stream creates and joins into a
//! real `xlreg serve` process, which is killed with SIGKILL at a random
//! moment, restarted on the same data dir, and checked: every acknowledged
//! create keeps its cluster ID, every acknowledged join is present exactly
//! once, no slot is used twice, and the store passes SQLite's integrity
//! check. Repeated a few rounds. Also: the running server's own database
//! connection reports WAL and `synchronous=FULL`.

#[path = "../../xlreg/tests/raw/mod.rs"]
mod raw;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raw::*;
use xlreg::regcred::RegCred;
use xlreg::wire::{NodeId, Which, XlRegMsg};

fn start_server(dir: &Path) -> (Child, RegCred) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xlreg"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--key-bits",
            "1024",
            "--hold-ms",
            "0",
            "--data-dir",
        ])
        .arg(dir)
        .env("XLREG_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start xlreg serve");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("listening on "),
        "unexpected first line {line:?}"
    );
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    let rc = RegCred::load(dir.join("regCred.dat")).unwrap();
    assert_eq!(rc.endpoints[0], line["listening on ".len()..].trim());
    (child, rc)
}

#[derive(Default)]
struct Acked {
    /// Cluster name → ID, for every acknowledged CreateReply.
    clusters: HashMap<String, NodeId>,
    /// Cluster ID → member IDs whose JoinReply arrived.
    joins: HashMap<NodeId, Vec<NodeId>>,
}

/// One client's bounded stream of creates and joins; stops at the first
/// failure (the server died).
async fn load(rc: RegCred, client: usize, round: usize, acked: Arc<Mutex<Acked>>) {
    for n in 0..50 {
        let name = format!("r{round}-c{client}-{n}");
        let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(5), try_create(&rc, &name)).await
        else {
            return;
        };
        acked.lock().unwrap().clusters.insert(name, c);
        for m in 0..6 {
            let id = NodeId::random();
            let ok = tokio::time::timeout(
                Duration::from_secs(5),
                try_join(&rc, &c, &format!("m{m}"), &id),
            )
            .await;
            if !matches!(ok, Ok(true)) {
                return;
            }
            acked.lock().unwrap().joins.entry(c).or_default().push(id);
        }
    }
}

async fn try_create(rc: &RegCred, name: &str) -> Result<NodeId, ()> {
    let mut s = RawTry::connect(rc).await?;
    s.call(&XlRegMsg::member(token("admin", 7, None, &[])))
        .await?;
    let r = s.call(&XlRegMsg::create(name, 6, 0, 1)).await?;
    if r.op != Some(6) {
        return Err(());
    }
    NodeId::from_bytes(r.cluster_id.as_deref().unwrap_or_default()).map_err(|_| ())
}

async fn try_join(rc: &RegCred, c: &NodeId, name: &str, id: &NodeId) -> bool {
    let Ok(mut s) = RawTry::connect(rc).await else {
        return false;
    };
    let Ok(r) = s
        .call(&XlRegMsg::member(token(
            name,
            2,
            Some(id),
            &["127.0.0.1:9"],
        )))
        .await
    else {
        return false;
    };
    if r.op != Some(4) {
        return false;
    }
    matches!(s.call(&XlRegMsg::join_by_id(c)).await, Ok(r) if r.op == Some(8))
}

/// A raw session that reports failures instead of panicking.
struct RawTry(Raw);

impl RawTry {
    async fn connect(rc: &RegCred) -> Result<Self, ()> {
        let rc = rc.clone();
        // Raw::go panics on failure; contain it.
        tokio::spawn(async move { Raw::go(&rc).await })
            .await
            .map(RawTry)
            .map_err(|_| ())
    }
    async fn call(&mut self, m: &XlRegMsg) -> Result<XlRegMsg, ()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let w = self.0.framing.encode(&self.0.key, m);
        self.0.stream.write_all(&w).await.map_err(|_| ())?;
        let mut reasm = xlreg::wire::Reassembler::new(self.0.framing);
        let mut buf = vec![0u8; 65536];
        loop {
            if let Some(m) = reasm.try_next(&self.0.key).map_err(|_| ())? {
                return Ok(m);
            }
            match self.0.stream.read(&mut buf).await {
                Ok(0) | Err(_) => return Err(()),
                Ok(n) => reasm.push(&buf[..n]),
            }
        }
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_joins_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut rng = seed();
    for round in 0..3 {
        let (mut child, rc) = start_server(dir.path());
        let mut tasks = Vec::new();
        for client in 0..4 {
            tasks.push(tokio::spawn(load(rc.clone(), client, round, acked.clone())));
        }
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let kill_after = Duration::from_millis(300 + (rng >> 33) % 700);
        tokio::time::sleep(kill_after).await;
        // SIGKILL: no shutdown code runs.
        child.kill().unwrap();
        child.wait().unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        let a = acked.lock().unwrap();
        eprintln!(
            "round {round}: killed after {kill_after:?}; acknowledged so far: {} clusters, {} joins",
            a.clusters.len(),
            a.joins.values().map(Vec::len).sum::<usize>()
        );
    }

    // Restart and verify everything acknowledged in every round.
    let (mut child, rc) = start_server(dir.path());
    let t = Instant::now();
    let a = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        !a.joins.is_empty(),
        "the load produced no acknowledged join"
    );
    assert!(
        !a.clusters.is_empty(),
        "the load produced no acknowledged create"
    );
    let mut reader = Raw::go(&rc).await;
    reader.member(token("reader", 3, None, &[])).await;
    // Every acknowledged create exists under its ID (read before anything
    // could re-create it), and creating it again by name gives that ID.
    for (name, id) in &a.clusters {
        let r = reader.call(&XlRegMsg::get_cluster(id, Which(0))).await;
        assert_eq!(
            r.op,
            Some(10),
            "acknowledged cluster {name} lost: {}",
            r.err_text()
        );
    }
    for (name, id) in &a.clusters {
        let got = try_create(&rc, name).await.expect("create after restart");
        assert_eq!(&got, id, "cluster {name} has a new ID after restart");
    }
    for (c, members) in &a.joins {
        let r = reader.call(&XlRegMsg::get_cluster(c, Which::ALL)).await;
        assert_eq!(r.op, Some(10), "{}", r.err_text());
        let stored: Vec<NodeId> = r
            .tokens
            .iter()
            .map(|t| NodeId::from_bytes(t.id.as_deref().unwrap()).unwrap())
            .collect();
        let unique: HashSet<_> = stored.iter().collect();
        assert_eq!(unique.len(), stored.len(), "a member stored twice in {c}");
        assert!(stored.len() <= 6, "more members than slots in {c}");
        for m in members {
            assert_eq!(
                stored.iter().filter(|s| *s == m).count(),
                1,
                "acknowledged member {m} of {c} lost or duplicated"
            );
        }
    }
    eprintln!(
        "verified {} clusters, {} acknowledged joins in {:?}",
        a.clusters.len(),
        a.joins.values().map(Vec::len).sum::<usize>(),
        t.elapsed()
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let db = rusqlite::Connection::open(dir.path().join("registry.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn the_running_server_commits_with_wal_and_synchronous_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xlreg"))
        .args(["serve", "--listen", "127.0.0.1:0", "--key-bits", "1024"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("XLREG_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xlreg serve");
    let err = BufReader::new(child.stderr.take().unwrap());
    // The server reads the settings back from the connection its commits
    // use and logs them; wait (bounded) for that line.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            if l.contains("registry database opened") {
                let _ = tx.send(l);
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let db = dir.path().join("registry.db");
    // From a second connection: the journal mode is a property of the file.
    let outside: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let line = line.expect("no 'registry database opened' log line");
    assert!(line.contains("journal_mode=wal"), "{line}");
    assert!(line.contains("synchronous=2"), "{line}");
    assert_eq!(outside, "wal");
}
