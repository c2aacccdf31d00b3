//! Security properties that survive the protocol's weaknesses: forged and
//! stale signatures are refused, an ID stays with the sig key that first
//! registered it, one session's Error never touches another, and the
//! server's private keys are written 0600 and never logged.

#[path = "../../xlreg/tests/raw/mod.rs"]
mod raw;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use raw::*;
use xlreg::regcred::RegCred;
use xlreg::wire::{digest_input, NodeId, Which, XlRegMsg};

#[tokio::test]
async fn forged_and_stale_signatures_are_refused() {
    let srv = server().await;
    let rc = srv.regcred();
    // Forged: signed with another member's sig key than the one in the token.
    let mut forged = token("victim", 1, None, &["127.0.0.1:1"]);
    forged.dig_sig = Some(keys(2).1.sign_sha1(&digest_input(&forged)).unwrap());
    Raw::go(rc)
        .await
        .expect_error(&XlRegMsg::member(forged), "crypto/rsa: verification error")
        .await;
    // Stale: a genuine signature over an older version of the token.
    let old = token("m", 1, None, &["127.0.0.1:1"]);
    let mut stale = token("m", 1, None, &["127.0.0.1:2"]);
    stale.dig_sig = old.dig_sig.clone();
    Raw::go(rc)
        .await
        .expect_error(&XlRegMsg::member(stale), "crypto/rsa: verification error")
        .await;
    // Attrs are signed too.
    let mut attrs = token("m", 1, None, &[]);
    attrs.attrs = Some(2);
    Raw::go(rc)
        .await
        .expect_error(&XlRegMsg::member(attrs), "crypto/rsa: verification error")
        .await;
}

#[tokio::test]
async fn an_id_cannot_be_taken_over_by_another_key_even_after_joining() {
    let srv = server().await;
    let rc = srv.regcred();
    let c = create(rc, "owned", 4).await;
    let id = NodeId::random();
    let mut owner = Raw::go(rc).await;
    owner
        .member(token("owner", 1, Some(&id), &["127.0.0.1:1"]))
        .await;
    owner.call(&XlRegMsg::join_by_id(&c)).await;
    let mut thief = Raw::go(rc).await;
    thief
        .expect_error(
            &XlRegMsg::member(token("owner", 2, Some(&id), &["127.0.0.1:6"])),
            "ID already registered to another key",
        )
        .await;
    let r = owner.call(&XlRegMsg::get_cluster(&c, Which::ALL)).await;
    assert_eq!(
        r.tokens[0].my_ends,
        vec![b"127.0.0.1:1".to_vec()],
        "the owner's token is untouched"
    );
}

#[tokio::test]
async fn one_sessions_error_does_not_affect_another() {
    let srv = server().await;
    let rc = srv.regcred();
    let c = create(rc, "iso", 4).await;
    let mut a = Raw::go(rc).await;
    a.member(token("a", 1, None, &["127.0.0.1:1"])).await;
    a.call(&XlRegMsg::join_by_id(&c)).await;
    // Interleave every kind of failure in other sessions.
    Raw::go(rc)
        .await
        .expect_error(
            &XlRegMsg {
                op: Some(99),
                ..Default::default()
            },
            "message tag out of range",
        )
        .await;
    let mut b = Raw::go(rc).await;
    b.send_raw(&[1, 2, 3, 4, 5]).await;
    let mut d = Raw::go(rc).await;
    d.member(token("a", 2, None, &["127.0.0.1:1"])).await;
    d.expect_error(
        &XlRegMsg::join_by_id(&c),
        "cluster member name already in use",
    )
    .await;
    // Session A carries on.
    let r = a.call(&XlRegMsg::get_cluster(&c, Which::ALL)).await;
    assert_eq!((r.op, r.which), (Some(10), Some(1)));
    assert_eq!(a.call(&XlRegMsg::bye()).await.op, Some(12));
    b.expect_closed().await;
}

#[test]
fn private_keys_are_0600_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xlreg"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--key-bits",
            "1024",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("XLREG_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || for _ in out.lines() {});
    let rc = RegCred::load(dir.path().join("regCred.dat")).unwrap();
    // Drive sessions that log at every level: success, refusal, garbage.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = create(&rc, "logged", 2).await;
        join_member(&rc, &c, "m", 1).await;
        Raw::go(&rc)
            .await
            .expect_error(
                &XlRegMsg::create("x", 2, 0, 1),
                "invalid msg type for current state",
            )
            .await;
        let mut g = Raw::go(&rc).await;
        g.send_raw(&[9u8; 48]).await;
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(log.contains("session ended"), "trace log is empty? {log}");
    for f in ["comms_key.pem", "sig_key.pem"] {
        let p = dir.path().join(f);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600,
            "{f}"
        );
        let pem = std::fs::read_to_string(&p).unwrap();
        for body_line in pem.lines().filter(|l| !l.starts_with("-----")).take(8) {
            assert!(
                !log.contains(&body_line[..32]),
                "{f} key material in the log"
            );
        }
    }
    assert!(!log.contains("PRIVATE KEY"));
    let data_dir_mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
    eprintln!(
        "trace log: {} bytes, no key material; key files 0600; data dir {data_dir_mode:o}",
        log.len()
    );
}

/// `xlreg serve` on `dir` with `args`, stopped after its first stdout line
/// (or run to its end when it fails); returns exit code (None while it
/// ran) and stderr.
fn serve_briefly(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xlreg"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(args)
        .env("XLREG_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let code = if first.starts_with("listening on ") {
        child.kill().unwrap();
        None
    } else {
        child.wait().unwrap().code()
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = child.wait();
    (code, err)
}

#[test]
fn loose_key_file_modes_warn_and_strict_perms_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    // A first run creates the identity with private modes: no warning.
    let (code, err) = serve_briefly(&d, &["--key-bits", "1024"]);
    assert_eq!(code, None, "{err}");
    assert!(!err.contains("accessible by group/others"), "{err}");
    let key = d.join("comms_key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = serve_briefly(&d, &[]);
    assert_eq!(code, None, "still serves: {err}");
    assert!(
        err.contains("comms_key.pem") && err.contains("accessible by group/others"),
        "{err}"
    );
    let (code, err) = serve_briefly(&d, &["--strict-perms"]);
    assert_ne!(code, None, "--strict-perms must refuse to start");
    assert!(
        err.contains("comms_key.pem") && err.contains("--strict-perms"),
        "{err}"
    );
}

#[test]
fn weak_registry_keys_are_warned_about_and_key_bounds_are_in_help() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = serve_briefly(&dir.path().join("d"), &["--key-bits", "1024"]);
    assert_eq!(code, None, "{err}");
    assert!(err.contains("--key-bits 1024 is weak"), "{err}");
    let help = Command::new(env!("CARGO_BIN_EXE_xlreg"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--max-key-bits"), "{help}");
    assert!(help.contains("2^31-1"), "{help}");
    assert!(help.contains("--strict-perms"), "{help}");
    for bad in ["512", "20000"] {
        let out = Command::new(env!("CARGO_BIN_EXE_xlreg"))
            .args(["serve", "--max-key-bits", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--max-key-bits {bad}");
    }
}
