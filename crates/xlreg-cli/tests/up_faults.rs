//! `xlreg up --faults -- CMD` and `xlreg fault`, end to end: three
//! member programs (`examples/up_member.rs --probe`, each reporting when a
//! peer starts or stops answering) under a partition and a heal, a
//! paused and resumed member, a killed and restarted one (same ID and
//! slot; none outlives up, also after kill -9), and the nemesis. Every
//! wait is bounded; the control socket lives in a private
//! XDG_RUNTIME_DIR per test.

mod support;
use support::pid_alive;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const XLREG: &str = env!("CARGO_BIN_EXE_xlreg");

fn example() -> PathBuf {
    support::up_member_example(XLREG)
}

/// A running `xlreg up --faults`, its stderr lines as they come.
struct Up {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    /// Lines not matched by a wait yet.
    pending: std::collections::VecDeque<String>,
    name: String,
    run_dir: tempfile::TempDir,
}

impl Up {
    fn start(name: &str, extra: &[&str]) -> Up {
        let run_dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(XLREG)
            .args([
                "up",
                "--size",
                "3",
                "--key-bits",
                "1024",
                "--name",
                name,
                "--faults",
                // The members inherit bound sockets: no probe-then-bind
                // race with the tests running beside (a restart binds the
                // same ports again).
                "--listen-fds",
            ])
            .args(extra)
            .arg("--")
            .arg(example())
            .arg("--probe")
            .env("XDG_RUNTIME_DIR", run_dir.path())
            .env_remove("XLREG_LOG")
            .env_remove("XLREG_KEY_POOL")
            .env_remove("XLREG_REGCRED")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Up {
            child,
            lines,
            seen: Vec::new(),
            pending: Default::default(),
            name: name.into(),
            run_dir,
        }
    }

    /// The first line not matched before for which `f` holds (waiting
    /// for it if need be).
    fn wait_for(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        if let Some(i) = self.pending.iter().position(|l| f(l)) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if f(&l) {
                        return l;
                    }
                    self.pending.push_back(l);
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no {what}; up said:\n{}", self.seen.join("\n"));
                }
            }
        }
    }

    /// Wait until the probes of `from` say `to` is (un)reachable.
    fn wait_reach(&mut self, from: usize, to: usize, reach: bool) {
        let want = format!("[m{from:02}] {{\"from\":{from},\"reach\":{reach},\"to\":{to}}}");
        self.wait_for(&want.clone(), |l| l == want);
    }

    /// A member program's start line: (pid, slot, id).
    fn wait_start(&mut self, member: usize) -> (i32, u64, String) {
        let prefix = format!("[m{member:02}] {{");
        let l = self.wait_for(&format!("start of m{member:02}"), |l| {
            l.starts_with(&prefix) && l.contains("\"pid\"")
        });
        let v: serde_json::Value = serde_json::from_str(&l[6..]).unwrap();
        (
            v["pid"].as_i64().unwrap() as i32,
            v["slot"].as_u64().unwrap(),
            v["id"].as_str().unwrap().to_string(),
        )
    }

    /// Run `xlreg fault --cluster NAME WORDS…`; its stdout.
    fn fault(&self, words: &[&str]) -> String {
        let out = Command::new(XLREG)
            .args(["fault", "--cluster", &self.name])
            .args(words)
            .env("XDG_RUNTIME_DIR", self.run_dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "xlreg fault {words:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn interrupt(mut self) -> String {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "up did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), rand_hex())
}

fn rand_hex() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{t:08x}")
}

#[test]
fn members_see_a_partition_and_its_heal_and_a_paused_member_stops_answering() {
    let mut up = Up::start(&unique("pf"), &[]);
    for from in 0..3 {
        for to in (0..3).filter(|&t| t != from) {
            up.wait_reach(from, to, true);
        }
    }
    let said = up.fault(&["partition", "0,1", "2"]);
    assert_eq!(said.trim(), "partition 0,1 2");
    up.wait_for("the partition logged with a time", |l| {
        l.ends_with("Z fault: partition 0,1 2") && l.as_bytes()[2] == b':'
    });
    for (a, b) in [(0, 2), (2, 0), (1, 2), (2, 1)] {
        up.wait_reach(a, b, false);
    }
    let st = up.fault(&["status"]);
    assert!(st.starts_with("faults: partition 0,1 2\n"), "{st}");
    assert!(st.contains("0 m00: running (pid"), "{st}");
    up.fault(&["heal"]);
    for (a, b) in [(0, 2), (2, 0), (1, 2), (2, 1)] {
        up.wait_reach(a, b, true);
    }
    // 0 <-> 1 never broke.
    assert!(
        !up.seen
            .iter()
            .any(|l| l.contains("\"from\":0,\"reach\":false,\"to\":1")),
        "{}",
        up.seen.join("\n")
    );
    up.fault(&["pause", "1"]);
    up.wait_reach(0, 1, false);
    up.wait_reach(2, 1, false);
    assert!(up.fault(&["status"]).contains("1 m01: paused (pid"));
    up.fault(&["resume", "1"]);
    up.wait_reach(0, 1, true);
    up.wait_reach(2, 1, true);
    // Bad requests are refused with a reason and exit code 2.
    let out = Command::new(XLREG)
        .args(["fault", "--cluster", &up.name, "isolate", "7"])
        .env("XDG_RUNTIME_DIR", up.run_dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no member 7"));
    let log = up.interrupt();
    assert!(log.contains("fault: heal"), "{log}");
    assert!(log.contains("fault: pause 1 (m01, pid"), "{log}");
}

#[test]
fn a_killed_and_restarted_member_keeps_its_id_and_slot_and_dies_with_up() {
    let mut up = Up::start(&unique("pk"), &[]);
    let mut first = Vec::new();
    for m in 0..3 {
        first.push(up.wait_start(m));
    }
    let (pid2, slot2, id2) = first[2].clone();
    assert_eq!(slot2, 2);
    up.fault(&["kill", "2"]);
    up.wait_for("the kill reported", |l| {
        l.contains("member m02 ended by xlreg fault")
    });
    assert!(!pid_alive(pid2));
    up.wait_reach(0, 2, false);
    assert!(up.fault(&["status"]).contains("2 m02: killed"));
    up.fault(&["restart", "2"]);
    let (pid2b, slot2b, id2b) = up.wait_start(2);
    assert_ne!(pid2b, pid2);
    assert_eq!((slot2b, &id2b), (2, &id2), "same slot and ID after restart");
    up.wait_reach(0, 2, true);
    // restart of a running member: killed, then started again.
    up.fault(&["restart", "2"]);
    let (pid2c, slot2c, id2c) = up.wait_start(2);
    assert!(pid2c != pid2b && slot2c == 2 && id2c == id2);
    // kill -9 of up: no member survives, the restarted one included, nor
    // a paused one.
    up.fault(&["pause", "0"]);
    let mut pids: Vec<i32> = first.iter().take(2).map(|f| f.0).collect();
    pids.push(pid2c);
    assert!(pids.iter().all(|&p| pid_alive(p)));
    up.child.kill().unwrap();
    up.child.wait().unwrap();
    let gone = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| pid_alive(p)) && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in pids {
        assert!(!pid_alive(p), "member process {p} outlived up");
    }
}

#[test]
fn the_nemesis_of_up_follows_its_seed_and_logs_each_step() {
    let mut up = Up::start(
        &unique("pn"),
        &[
            "--nemesis",
            "isolate-one",
            "--every",
            "300ms",
            "--seed",
            "42",
        ],
    );
    let want = xlreg::testing::faults::nemesis::plan(
        xlreg::testing::faults::NemesisKind::IsolateOne,
        3,
        42,
        3,
    );
    up.wait_for("the nemesis line", |l| {
        l.contains("nemesis isolate-one every 300ms, seed 42")
    });
    for f in want {
        let want = format!("Z fault: {f}");
        up.wait_for(&want.clone(), |l| l.ends_with(&want));
        up.wait_for("a heal", |l| l.ends_with("Z fault: heal"));
    }
    up.interrupt();
}
