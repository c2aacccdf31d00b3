//! `xlreg up --faults -- CMD` and `xlreg fault`, end to end: three
//! member programs (`examples/up_member.rs --probe`, each reporting when a
//! peer starts or stops answering) under a partition and a heal, a
//! paused and resumed member, a killed and restarted one (same ID and
//! slot; none outlives up, also after kill -9), a replaced member (new
//! node, same ports and proxies; resize refused), and the nemesis. Every
//! wait is bounded; the control socket lives in a private
//! XDG_RUNTIME_DIR per test.

mod support;
use support::{pid_alive, unique, Up};

use std::path::PathBuf;
use std::time::{Duration, Instant};

const XLREG: &str = env!("CARGO_BIN_EXE_xlreg");

fn example() -> PathBuf {
    support::up_member_example(XLREG)
}

/// `xlreg up --size 3 --faults --listen-fds -- up_member --probe`.
fn start(name: &str, extra: &[&str]) -> Up {
    let mut args = vec![
        "--size",
        "3",
        "--key-bits",
        "1024",
        "--faults",
        // The members inherit bound sockets: no probe-then-bind race with
        // the tests running beside (a restart binds the same ports again).
        "--listen-fds",
    ];
    args.extend_from_slice(extra);
    let ex = example();
    Up::start(XLREG, name, &args, &[ex.to_str().unwrap(), "--probe"])
}

#[test]
fn members_see_a_partition_and_its_heal_and_a_paused_member_stops_answering() {
    let mut up = start(&unique("pf"), &[]);
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
    assert!(up.fault_refused(&["isolate", "7"]).contains("no member 7"));
    let log = up.interrupt();
    assert!(log.contains("fault: heal"), "{log}");
    assert!(log.contains("fault: pause 1 (m01, pid"), "{log}");
}

#[test]
fn a_killed_and_restarted_member_keeps_its_id_and_slot_and_dies_with_up() {
    let mut up = start(&unique("pk"), &[]);
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
    let mut up = start(
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

#[test]
fn under_faults_a_replacement_keeps_its_slots_ports_and_proxies_and_resize_is_refused() {
    let mut up = start(&unique("pr"), &[]);
    let (_, _, id2) = up.wait_start(2);
    up.wait_reach(0, 2, true);
    let said = up.fault(&["replace", "2"]);
    assert!(said.starts_with("replace 2: m02 ("), "{said}");
    let (_, slot, id) = up.wait_start_of("m02r1");
    assert_eq!(slot, 2);
    assert_ne!(id, id2);
    // The new program dials its peers through its own proxies, which the
    // faults still act on.
    let line = |reach: bool| format!("[m02r1] {{\"from\":2,\"reach\":{reach},\"to\":0}}");
    up.wait_for("m02r1 reaching m00", |l| l == line(true));
    up.fault(&["isolate", "2"]);
    up.wait_for("m02r1 cut off from m00", |l| l == line(false));
    up.fault(&["heal"]);
    up.wait_for("m02r1 reaching m00 again", |l| l == line(true));
    let err = up.fault_refused(&["resize", "4"]);
    assert!(err.contains("started with --faults"), "{err}");
    up.interrupt();
}
