//! `xlreg peer` end to end, as a user runs it: the ring under
//! `xlreg up -- xlreg peer ring`, one-off `send`/`listen`, and bad input.
//! Every run is bounded in time; members use 1024-bit keys.

mod support;
use support::wait_bounded;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

const XLREG: &str = env!("CARGO_BIN_EXE_xlreg");

fn xlreg() -> Command {
    let mut c = Command::new(XLREG);
    c.env_remove("XLREG_LOG")
        .env_remove("XLREG_KEY_POOL")
        .env_remove("XLREG_REGCRED")
        .env_remove("XLREG_CLUSTER_ID")
        .env_remove("XLREG_NODE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn up(size: &str, cmd: &[&str]) -> Output {
    let child = xlreg()
        .args([
            "up",
            "--size",
            size,
            "--key-bits",
            "1024",
            "--endpoints",
            "1",
            "--",
        ])
        .args(cmd)
        .spawn()
        .unwrap();
    wait_bounded(child, Duration::from_secs(90))
}

#[test]
fn up_runs_peer_ring_as_every_member_and_every_message_arrives_authenticated() {
    let out = up("3", &[XLREG, "peer", "ring"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{err}", out.status);
    // Each member i got the message of member i-1 mod 3, and says so.
    for i in 0..3usize {
        let prev = (i + 2) % 3;
        let line = err
            .lines()
            .find(|l| l.contains(&format!("] member {i} (")) && l.contains("received"))
            .unwrap_or_else(|| panic!("no receipt by member {i}:\n{err}"));
        assert!(
            line.contains(&format!("from member {prev} (")),
            "member {i} must hear from member {prev}: {line}"
        );
        assert!(
            line.contains("authenticated by its registered sig key"),
            "{line}"
        );
        assert!(line.contains(&format!("(member {prev})\"")), "{line}");
        assert!(line.contains("handshake "), "{line}");
    }
    assert_eq!(err.matches(": sent 25 bytes to member").count(), 3, "{err}");
}

/// The `peer_ring` example of the library, built next to the xlreg binary
/// (a no-op for cargo when it is up to date).
fn peer_ring_example() -> std::path::PathBuf {
    let dir = std::path::Path::new(XLREG).parent().unwrap();
    let mut c = Command::new(env!("CARGO"));
    c.args(["build", "-p", "xlreg", "--example", "peer_ring"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if dir.ends_with("release") {
        c.arg("--release");
    }
    let st = c.status().unwrap();
    assert!(st.success(), "cargo build --example peer_ring: {st}");
    dir.join("examples").join("peer_ring")
}

#[test]
fn up_runs_the_peer_ring_example_and_exits_0_when_every_message_arrived() {
    let exe = peer_ring_example();
    let out = up("3", &[exe.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{err}", out.status);
    for i in 0..3usize {
        let want = format!(
            "got \"hello from member {}\" from member {} (",
            (i + 2) % 3,
            (i + 2) % 3
        );
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("] member {i} (")) && l.contains(&want)),
            "member {i}: {want}\n{err}"
        );
    }
}

#[test]
fn peer_send_and_listen_deliver_messages_from_a_member_and_from_an_anonymous_client() {
    // Copy 0 (named m00) listens for two messages, taking clients too;
    // copy 1 sends one as a member, then one as a client that reads the
    // members without joining and shows no certificate.
    let script = format!(
        "if [ \"$XLREG_MEMBER_INDEX\" = 0 ]; then \
           exec {XLREG} peer listen --anonymous --count 2 --listen-for 60; \
         else {XLREG} peer send --to-name m00 --message 'one-off hello' && \
           exec {XLREG} peer send --anonymous --to-name m00 --message 'from a client' --key-bits 1024; fi"
    );
    let out = up("2", &["sh", "-c", &script]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{err}", out.status);
    let line = |needle: &str| {
        err.lines()
            .find(|l| l.starts_with("[m00]") && l.contains(needle))
            .unwrap_or_else(|| panic!("m00 printed no {needle:?}:\n{err}"))
            .to_string()
    };
    assert!(line("one-off hello").contains("(m01) (handshake"), "{err}");
    assert!(
        line("from a client").contains("an anonymous client (handshake"),
        "{err}"
    );
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("[m01]") && l.contains("sent 13 bytes to member"))
            .count(),
        2,
        "{err}"
    );
}

#[test]
fn peer_commands_refuse_bad_input_with_exit_code_2() {
    // Outside `xlreg up`, the ring names what is missing.
    let out = wait_bounded(
        xlreg().args(["peer", "ring"]).spawn().unwrap(),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is not set") && err.contains("xlreg up"),
        "{err}"
    );
    let out = wait_bounded(
        xlreg()
            .args(["peer", "ring", "--timeout", "0"])
            .spawn()
            .unwrap(),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--timeout 0 must be"), "{err}");
    // A member that does not exist.
    let script = format!("exec {XLREG} peer send --to 7 --message x --wait 30");
    let out = up("2", &["sh", "-c", &script]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--to 7: cluster"), "{err}");
    assert!(err.contains("exited with exit status: 2"), "{err}");
}
