//! `xlreg up -- CMD` changing its cluster through `xlreg fault` (issue 23),
//! without `--faults`: `replace 1` kills member 1's program, evicts it and
//! starts a new program with a new node in slot 1; `resize 4` starts a
//! fourth program that joins slot 3; a shrink over an occupied slot is
//! refused with what to do, and works after `evict`. A separate
//! `xlreg members --watch --json` sees each change, as a member's own
//! watch would. Every wait is bounded; the control socket lives in a
//! private XDG_RUNTIME_DIR per test.

mod support;
use support::{lines_of, pid_alive, unique, Up};

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;
use xlreg::client::up_env::UP_RESERVED;

const XLREG: &str = env!("CARGO_BIN_EXE_xlreg");

/// `xlreg up --size 3 --json --listen-fds -- up_member`, once every
/// program has joined; also the regCred.dat path from its report.
fn start(prefix: &str) -> (Up, String) {
    let ex = support::up_member_example(XLREG);
    let up = Up::start(
        XLREG,
        &unique(prefix),
        &[
            "--size",
            "3",
            "--key-bits",
            "1024",
            "--json",
            "--listen-fds",
        ],
        &[ex.to_str().unwrap()],
    );
    let mut doc = String::new();
    while !doc.ends_with("}\n") || serde_json::from_str::<Value>(&doc).is_err() {
        let l = up
            .out
            .recv_timeout(Duration::from_secs(60))
            .expect("up's JSON report within 60 s");
        doc.push_str(&l);
        doc.push('\n');
    }
    let report: Value = serde_json::from_str(&doc).unwrap();
    let rc = report["regcred"].as_str().expect("regcred in the report");
    (up, rc.to_string())
}

/// `xlreg members --watch --json` of the cluster: one view per line.
struct Watcher {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Watcher {
    fn start(rc: &str, cluster: &str) -> Watcher {
        let mut child = Command::new(XLREG)
            .args(["members", "--regcred", rc, "--cluster", cluster])
            .args(["--watch", "--json"])
            .env_remove("XLREG_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stdout.take());
        Watcher {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first view from now on for which `f` holds, within 30 s.
    fn until(&mut self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(l) = self.lines.recv_timeout(left) else {
                panic!(
                    "the watcher never saw {what}; it saw:\n{}",
                    self.seen.join("\n")
                );
            };
            self.seen.push(l.clone());
            let v: Value = serde_json::from_str(&l).unwrap();
            if f(&v) {
                return v;
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The member in `slot` of a view's JSON.
fn in_slot(v: &Value, slot: u64) -> Option<&Value> {
    v["members"]
        .as_array()?
        .iter()
        .find(|m| m["index"].as_u64() == Some(slot))
}

/// Slot `slot` is held by the program of member `name` (not up's
/// reservation).
fn joined(v: &Value, slot: u64, name: &str) -> bool {
    in_slot(v, slot).is_some_and(|m| {
        m["name"] == name && m["attrs"].as_u64().is_some_and(|a| a & UP_RESERVED == 0)
    })
}

#[test]
fn replace_1_starts_a_new_node_in_slot_1_and_a_watcher_sees_it() {
    let (mut up, rc) = start("ur");
    let first: Vec<(i32, u64, String)> = (0..3).map(|i| up.wait_start(i)).collect();
    let mut w = Watcher::start(&rc, &up.name);
    let v0 = w.until("the cluster", |_| true);
    for (pid, slot, id) in &first {
        assert!(pid_alive(*pid));
        assert_eq!(in_slot(&v0, *slot).unwrap()["id"], id.as_str());
    }

    let said = up.fault(&["replace", "1"]);
    assert!(
        said.starts_with(&format!("replace 1: m01 ({}) -> m01r1 (", first[1].2)),
        "{said}"
    );
    let (pid, slot, id) = up.wait_start_of("m01r1");
    assert_eq!(slot, 1, "the new program's own join took slot 1");
    assert_ne!(id, first[1].2, "a new node ID");
    assert!(said.contains(&format!("({id}, pid {pid})")), "{said}");
    assert!(!pid_alive(first[1].0), "the old program was killed");
    let v = w.until("slot 1 held by m01r1", |v| joined(v, 1, "m01r1"));
    assert_eq!(in_slot(&v, 1).unwrap()["id"], id.as_str());
    for k in [0, 2] {
        assert_eq!(in_slot(&v, k).unwrap()["id"], first[k as usize].2.as_str());
    }
    assert!(v["version"].as_u64() > v0["version"].as_u64());
    assert!(pid_alive(first[0].0) && pid_alive(first[2].0));

    // Without --faults: network faults are refused, the rest works.
    let err = up.fault_refused(&["isolate", "1"]);
    assert!(err.contains("start up with --faults"), "{err}");
    let st = up.fault(&["status"]);
    assert!(st.starts_with("faults: off"), "{st}");
    assert!(
        st.contains(&format!("1 m01r1: running (pid {pid})")),
        "{st}"
    );
    let log = up.interrupt();
    assert!(log.contains("fault: kill 1 (m01) to replace it"), "{log}");
    assert!(log.contains("fault: replace 1: m01 ("), "{log}");
}

#[test]
fn resize_3_to_4_starts_a_program_in_slot_3_and_a_shrink_needs_the_slot_empty() {
    let (mut up, rc) = start("ug");
    for i in 0..3 {
        up.wait_start(i);
    }
    let mut w = Watcher::start(&rc, &up.name);
    w.until("the cluster", |_| true);

    let said = up.fault(&["resize", "4"]);
    assert!(
        said.starts_with("resize 3 -> 4: version ") && said.trim_end().ends_with("m03 joined"),
        "{said}"
    );
    let (pid3, slot, id) = up.wait_start(3);
    assert_eq!(slot, 3);
    let v = w.until("4 members", |v| v["max_size"] == 4 && joined(v, 3, "m03"));
    assert_eq!(v["members"].as_array().unwrap().len(), 4);
    assert_eq!(in_slot(&v, 3).unwrap()["id"], id.as_str());

    // Shrinking over m03 is refused, saying what to do.
    let err = up.fault_refused(&["resize", "3"]);
    assert!(
        err.contains("cannot shrink cluster to 3: slot 3 is held by member m03")
            && err.contains("xlreg fault evict SLOT"),
        "{err}"
    );
    let said = up.fault(&["evict", "3"]);
    assert!(said.starts_with("evict 3 (m03): version "), "{said}");
    assert!(!pid_alive(pid3));
    w.until("slot 3 empty", |v| in_slot(v, 3).is_none());
    assert!(up
        .fault(&["resize", "3"])
        .starts_with("resize 4 -> 3: version "));
    w.until("size 3", |v| v["max_size"] == 3);
    let st = up.fault(&["status"]);
    assert!(
        st.contains("size: 3") && st.contains("3 m03: evicted"),
        "{st}"
    );
    let err = up.fault_refused(&["restart", "3"]);
    assert!(err.contains("was evicted"), "{err}");
    up.interrupt();
}
