//! `xlreg up` end to end, as a user runs it: in-process members (3 and
//! 64), the key pool, and `up -- CMD` with the example member program
//! (`examples/up_member.rs`), with `xlreg join`, and with a failing
//! program. Every run is bounded in time; members use 1024-bit keys.

mod support;
use support::{pid_alive, wait_bounded};

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const XLREG: &str = env!("CARGO_BIN_EXE_xlreg");

fn xlreg() -> Command {
    let mut c = Command::new(XLREG);
    c.env_remove("XLREG_LOG")
        .env_remove("XLREG_KEY_POOL")
        .env_remove("XLREG_REGCRED")
        .stdin(Stdio::null());
    c
}

fn run(args: &[&str], limit: Duration) -> Output {
    let child = xlreg()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(child, limit)
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)))
}

/// A complete, consistent cluster of `n` in `up --json` output. With
/// `named_by_slot` (in-process members join in order; `up -- CMD` joins
/// member i into slot i before starting the programs) member `mNN` holds
/// slot NN.
fn check_cluster(j: &serde_json::Value, n: usize, endpoints: usize, named_by_slot: bool) {
    let members = j["members"].as_array().unwrap();
    assert_eq!(members.len(), n);
    assert_eq!(j["max_size"], n);
    assert_eq!(j["endpoint_count"], endpoints);
    assert!(j["cluster_name"].as_str().unwrap().starts_with("up-"));
    let mut ids = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    let mut ports = std::collections::HashSet::new();
    for (i, m) in members.iter().enumerate() {
        assert_eq!(m["index"], i);
        if named_by_slot {
            assert_eq!(m["name"], format!("m{i:02}"), "slot {i}");
        }
        assert!(ids.insert(m["id"].as_str().unwrap().to_string()));
        assert!(keys.insert(m["comms_key_sha256"].as_str().unwrap().to_string()));
        assert!(keys.insert(m["sig_key_sha256"].as_str().unwrap().to_string()));
        let eps = m["endpoints"].as_array().unwrap();
        assert_eq!(eps.len(), endpoints);
        for e in eps {
            let e = e.as_str().unwrap();
            assert!(e.starts_with("127.0.0.1:"), "{e}");
            assert!(ports.insert(e.to_string()), "endpoint {e} twice");
        }
    }
    // Every phase did real work (keys: at least reading them), so each
    // took some time, and no run here is allowed two minutes.
    let t = &j["timings"];
    for k in ["keygen_s", "formation_s", "total_s"] {
        let v = t[k].as_f64().unwrap();
        assert!(v > 0.0 && v < 120.0, "{k} = {v}");
    }
    assert!(
        t["total_s"].as_f64().unwrap()
            >= t["keygen_s"].as_f64().unwrap() + t["formation_s"].as_f64().unwrap()
    );
}

#[test]
fn up_three_in_process_members_and_clean_up() {
    let out = run(
        &["up", "--size", "3", "--key-bits", "1024", "--json"],
        Duration::from_secs(60),
    );
    let j = json(&out);
    check_cluster(&j, 3, 2, true);
    // Embedded registry: its regCred was in a temporary directory, gone now.
    let rc = PathBuf::from(j["regcred"].as_str().unwrap());
    assert!(rc.ends_with("regCred.dat"));
    assert!(!rc.exists(), "{} left behind", rc.display());
    // No progress bar or log noise when stderr is not a terminal.
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn up_sixty_four_in_process_members() {
    let out = run(
        &[
            "up",
            "--size",
            "64",
            "--key-bits",
            "1024",
            "--endpoints",
            "1",
            "--json",
        ],
        Duration::from_secs(120),
    );
    check_cluster(&json(&out), 64, 1, true);
}

#[test]
fn up_prints_a_table_and_a_warm_key_pool_makes_no_keys() {
    let pool = tempfile::tempdir().unwrap();
    let p = pool.path().to_str().unwrap();
    let args = [
        "up",
        "--size",
        "2",
        "--key-bits",
        "1024",
        "--name",
        "tabled",
        "--key-pool",
        p,
    ];
    let out = run(&args, Duration::from_secs(60));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "cluster   tabled ",
        "IDX  NAME",
        "COMMS KEY",
        "SIG KEY",
        "(4 generated)",
        "embedded, in memory",
    ] {
        assert!(text.contains(want), "{want:?} missing in:\n{text}");
    }
    assert_eq!(text.lines().filter(|l| l.contains("127.0.0.1:")).count(), 3);
    // The table's rows: slot 0 is m00, slot 1 is m01.
    for i in 0..2 {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{i}  m{i:02} "))),
            "row {i} in:\n{text}"
        );
    }
    assert!(pool.path().join("rsa1024/key-00003.pem").exists());
    let again = run(&args, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(text.contains("(4 from the pool)"), "{text}");
}

#[test]
fn up_refuses_bad_input_with_exit_code_2() {
    for args in [
        &["up", "--size", "1"][..],
        &["up", "--size", "65"],
        &["up", "--size", "3", "--key-bits", "4096"],
        &["up", "--size", "3", "--endpoints", "0"],
        &["up", "--size", "3", "--regcred", "/nonexistent/regCred.dat"],
        &[
            "up",
            "--size",
            "2",
            "--key-bits",
            "1024",
            "--",
            "/nonexistent/program",
        ],
    ] {
        let out = run(args, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

fn example() -> PathBuf {
    support::up_member_example(XLREG)
}

#[test]
fn up_runs_the_example_per_member_and_stops_them_on_ctrl_c() {
    let mut child = xlreg()
        .args(["up", "--size", "3", "--key-bits", "1024", "--json", "--"])
        .arg(example())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // The JSON document ends with a lone "}" line; up then stays.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut doc = String::new();
        for l in BufReader::new(stdout).lines() {
            let l = l.unwrap();
            doc.push_str(&l);
            doc.push('\n');
            if l == "}" {
                let _ = tx.send(doc.clone());
            }
        }
    });
    let doc = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(d) => d,
        Err(_) => {
            let _ = child.kill();
            panic!("no cluster printed; stderr: {}", err.join().unwrap());
        }
    };
    let j: serde_json::Value = serde_json::from_str(&doc).unwrap();
    check_cluster(&j, 3, 2, true);
    // Members listen on their endpoints.
    for m in j["members"].as_array().unwrap() {
        let e = m["endpoints"][0].as_str().unwrap();
        let mut s = std::net::TcpStream::connect(e).unwrap();
        let mut line = String::new();
        BufReader::new(&mut s).read_line(&mut line).unwrap();
        assert!(line.starts_with(m["name"].as_str().unwrap()), "{line}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "up stays until Ctrl-C");
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = wait_bounded(child, Duration::from_secs(20));
    let err = err.join().unwrap();
    assert!(out.status.success(), "{}: {err}", out.status);
    // Each member printed its view (forwarded, prefixed, to stderr), with
    // the same members as up's table; none survives up.
    let mut pids = Vec::new();
    for l in err.lines().filter(|l| l.starts_with("[m0")) {
        let (_, rest) = l.split_once("] ").unwrap();
        let v: serde_json::Value = serde_json::from_str(rest).unwrap();
        assert_eq!(v["view"]["members"], j["members"], "{l}");
        pids.push(v["pid"].as_i64().unwrap() as i32);
    }
    assert_eq!(pids.len(), 3, "{err}");
    for p in pids {
        assert!(!pid_alive(p), "member process {p} still alive");
    }
}

#[test]
fn up_ends_when_every_launched_member_has_exited() {
    let child = xlreg()
        .args(["up", "--size", "3", "--key-bits", "1024", "--json", "--"])
        .arg(example())
        .arg("--once")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(60));
    check_cluster(&json(&out), 3, 2, true);
}

#[test]
fn every_programs_member_index_is_its_slot() {
    // Each program prints its name and XLREG_MEMBER_INDEX, then joins; the
    // slot each name holds is in up's table.
    let out = run(
        &[
            "up",
            "--size",
            "5",
            "--key-bits",
            "1024",
            "--endpoints",
            "1",
            "--json",
            "--",
            "sh",
            "-c",
            "echo \"index $XLREG_MEMBER_NAME $XLREG_MEMBER_INDEX\"; exec \"$0\" join --log warn",
            XLREG,
        ],
        Duration::from_secs(90),
    );
    let j = json(&out);
    check_cluster(&j, 5, 1, true);
    let err = String::from_utf8_lossy(&out.stderr);
    for m in j["members"].as_array().unwrap() {
        let (name, slot) = (m["name"].as_str().unwrap(), &m["index"]);
        let line = format!("[{name}] index {name} {slot}");
        assert!(err.contains(&line), "{line:?} missing in:\n{err}");
    }
}

#[test]
fn a_member_program_that_exits_cleanly_before_joining_is_reported_at_once() {
    let t = std::time::Instant::now();
    let out = run(
        &[
            "up",
            "--size",
            "3",
            "--key-bits",
            "1024",
            "--wait",
            "120",
            "--",
            "true",
        ],
        Duration::from_secs(100),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exited with exit status: 0 before joining"),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "reported after {:?}, not at once (the wait was 120 s)",
        t.elapsed()
    );
}

#[test]
fn up_runs_xlreg_join_as_the_member_program() {
    // `xlreg join` takes its regCred, node directory and cluster from the
    // environment that `up` gives each member: no flags needed.
    let child = xlreg()
        .args([
            "up",
            "--size",
            "4",
            "--key-bits",
            "1024",
            "--endpoints",
            "1",
            "--json",
            "--",
            XLREG,
            "join",
            "--json",
            "--log",
            "warn",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(60));
    let j = json(&out);
    check_cluster(&j, 4, 1, true);
    // `xlreg join` used the identity up prepared: same IDs.
    let err = String::from_utf8_lossy(&out.stderr);
    for m in j["members"].as_array().unwrap() {
        assert!(err.contains(m["id"].as_str().unwrap()), "{err}");
    }
}

#[test]
fn a_member_program_that_fails_fails_up() {
    let out = run(
        &[
            "up",
            "--size",
            "3",
            "--key-bits",
            "1024",
            "--wait",
            "30",
            "--",
            "sh",
            "-c",
            "exit 3",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exited with exit status: 3 before the cluster was complete"),
        "{err}"
    );
}

#[test]
fn up_keep_serves_member_endpoints_until_ctrl_c() {
    let mut child = xlreg()
        .args([
            "up",
            "--size",
            "2",
            "--key-bits",
            "1024",
            "--json",
            "--keep",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut doc = String::new();
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            doc.push_str(&l);
            doc.push('\n');
            if l == "}" {
                let _ = tx.send(doc.clone());
            }
        }
    });
    let Ok(doc) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        panic!("no cluster printed");
    };
    let j: serde_json::Value = serde_json::from_str(&doc).unwrap();
    check_cluster(&j, 2, 2, true);
    for m in j["members"].as_array().unwrap() {
        for e in m["endpoints"].as_array().unwrap() {
            let mut s = std::net::TcpStream::connect(e.as_str().unwrap()).unwrap();
            let mut line = String::new();
            BufReader::new(&mut s).read_line(&mut line).unwrap();
            assert!(line.contains(m["name"].as_str().unwrap()), "{line}");
        }
    }
    // The registry serves too.
    let rc = j["regcred"].as_str().unwrap().to_string();
    assert!(Path::new(&rc).exists());
    let members = run(
        &[
            "members",
            "--regcred",
            &rc,
            "--cluster-id",
            j["cluster_id"].as_str().unwrap(),
            "--json",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(json(&members)["members"], j["members"]);
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = wait_bounded(child, Duration::from_secs(20));
    assert!(out.status.success(), "{}", out.status);
    assert!(!Path::new(&rc).exists());
    let e = j["members"][0]["endpoints"][0].as_str().unwrap();
    assert!(std::net::TcpStream::connect(e).is_err(), "endpoint closed");
}

#[test]
fn with_listen_fds_a_member_that_binds_nothing_serves_on_the_inherited_sockets() {
    // The example binds nothing when it inherits sockets (LISTEN_FDS): it
    // serves on the ones up bound and passed as descriptors 3 and 4.
    let mut child = xlreg()
        .args([
            "up",
            "--size",
            "3",
            "--key-bits",
            "1024",
            "--listen-fds",
            "--json",
            "--",
        ])
        .arg(example())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut doc = String::new();
        for l in BufReader::new(stdout).lines() {
            let l = l.unwrap();
            doc.push_str(&l);
            doc.push('\n');
            if l == "}" {
                let _ = tx.send(doc.clone());
            }
        }
    });
    let Ok(doc) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        panic!("no cluster printed; stderr: {}", err.join().unwrap());
    };
    let j: serde_json::Value = serde_json::from_str(&doc).unwrap();
    check_cluster(&j, 3, 2, true);
    for m in j["members"].as_array().unwrap() {
        for e in m["endpoints"].as_array().unwrap() {
            let e = e.as_str().unwrap();
            // Held by the program: nobody else can bind it.
            let taken = std::net::TcpListener::bind(e);
            assert!(taken.is_err(), "{e} is free: the socket was not passed");
            let mut s = std::net::TcpStream::connect(e).unwrap();
            let mut line = String::new();
            BufReader::new(&mut s).read_line(&mut line).unwrap();
            assert!(line.starts_with(m["name"].as_str().unwrap()), "{e}: {line}");
        }
    }
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = wait_bounded(child, Duration::from_secs(20));
    let err = err.join().unwrap();
    assert!(out.status.success(), "{}: {err}", out.status);
}

#[test]
fn kill_9_of_up_leaves_no_member_process_also_with_listen_fds() {
    // With --listen-fds each program starts through `sh -c 'exec ...'`;
    // the parent-death signal set before that exec must still reach it.
    let mut child = xlreg()
        .args([
            "up",
            "--size",
            "3",
            "--key-bits",
            "1024",
            "--listen-fds",
            "--",
        ])
        .arg(example())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut pids = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while pids.len() < 3 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(l) = rx.recv_timeout(left) else {
            let _ = child.kill();
            panic!("the members did not all report their PIDs");
        };
        if let Some((_, rest)) = l.split_once("] {") {
            let v: serde_json::Value = serde_json::from_str(&format!("{{{rest}")).unwrap();
            pids.push(v["pid"].as_i64().unwrap() as i32);
        }
    }
    assert!(pids.iter().all(|&p| pid_alive(p)));
    child.kill().unwrap(); // SIGKILL: up cannot clean up
    child.wait().unwrap();
    let gone = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| pid_alive(p)) && std::time::Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in pids {
        assert!(!pid_alive(p), "member process {p} outlived up");
    }
}
