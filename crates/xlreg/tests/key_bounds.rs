//! Hostile member keys on a real server: every key no honest member sends
//! (modulus outside 1024..=max, public exponent even, 1 or above 2^31-1) is
//! refused with an Error naming the limit, before any RSA arithmetic — so a
//! refused session costs no more server CPU than a normal one.

mod raw;

use std::time::Duration;

use raw::*;
use xlreg::wire::internals::spki_der_from_parts;
use xlreg::wire::{PrivateKey, Token, XlRegMsg};

/// An odd made-up modulus of exactly `bits` bits (not a product of primes:
/// the server must refuse it on its shape alone).
fn modulus(bits: usize) -> Vec<u8> {
    let mut n = vec![0xffu8; bits.div_ceil(8)];
    if bits % 8 != 0 {
        n[0] = (1u8 << (bits % 8)) - 1;
    }
    n
}

/// A Member token whose sig key is (`n`, `e`), with a garbage signature.
fn hostile(n: &[u8], e: &[u8]) -> Token {
    let mut t = token("m", 1, None, &["127.0.0.1:1"]);
    t.sig_key = Some(spki_der_from_parts(n, e));
    t.dig_sig = Some(vec![0x5a; n.len()]);
    t
}

/// The exponent-near-the-modulus attack: a 3072-bit modulus (allowed) with
/// an exponent of 3070 bits. Without the exponent bound one signature check
/// with it costs ~35 Hello decryptions.
fn long_exponent() -> Token {
    hostile(&modulus(3072), &modulus(3070))
}

#[tokio::test]
async fn each_kind_of_hostile_key_is_refused_with_the_limit_named() {
    let srv = server().await;
    let rc = srv.regcred();
    let e = [1u8, 0, 1];
    let cases = [
        (hostile(&modulus(8192), &e), "above the limit of 4096 bits"),
        (hostile(&modulus(4097), &e), "above the limit of 4096 bits"),
        (hostile(&modulus(768), &e), "below the minimum of 1024 bits"),
        (long_exponent(), "larger than the limit of 2^31-1"),
        (hostile(&modulus(2048), &[1, 0, 0]), "must be odd"),
        (hostile(&modulus(2048), &[1]), "must be odd and at least 3"),
    ];
    for (t, want) in cases {
        let mut s = Raw::go(rc).await;
        let r = s.call(&XlRegMsg::member(t)).await;
        assert_eq!(r.op, Some(13), "Error expected for {want:?}, got {r:?}");
        assert!(
            r.err_text().starts_with("x509: ") && r.err_text().contains(want),
            "{want:?} not in {:?}",
            r.err_text()
        );
        s.expect_closed().await;
    }
    // The same bounds hold for the comms key.
    let mut t = token("m", 1, None, &[]);
    t.comms_key = Some(spki_der_from_parts(&modulus(5000), &e));
    let r = Raw::go(rc).await.call(&XlRegMsg::member(t)).await;
    assert!(r.err_text().contains("above the limit"), "{}", r.err_text());
    // And the server still serves an honest member.
    let c = create(rc, "after", 2).await;
    join_member(rc, &c, "ok", 2).await;
}

#[tokio::test]
async fn cheap_limits_are_checked_before_the_keys_and_the_signature() {
    let srv = server().await;
    let rc = srv.regcred();
    let mut t = long_exponent();
    t.my_ends = (0..17)
        .map(|i| format!("127.0.0.1:{i}").into_bytes())
        .collect();
    Raw::go(rc)
        .await
        .expect_error(&XlRegMsg::member(t), "member token too large")
        .await;
    let mut t = long_exponent();
    t.name = Some(vec![b'n'; 257]);
    Raw::go(rc)
        .await
        .expect_error(&XlRegMsg::member(t), "member token too large")
        .await;
}

#[tokio::test]
async fn max_key_bits_setting_moves_the_upper_bound() {
    let srv = server_with(|c| c.max_key_bits = 1024).await;
    let rc = srv.regcred();
    let big = PrivateKey::generate(2048).unwrap();
    let (ck, _) = keys(3);
    let eps = vec!["127.0.0.1:1".to_string()];
    let t = xlreg::wire::signed_token("big", 0, None, &ck.public(), &big, &eps).unwrap();
    let r = Raw::go(rc).await.call(&XlRegMsg::member(t)).await;
    assert!(
        r.err_text().contains("above the limit of 1024 bits"),
        "{}",
        r.err_text()
    );
    // A 1024-bit member still gets in.
    Raw::go(rc).await.member(token("small", 3, None, &[])).await;
    // A bound outside 1024..=16384 is a start-up error, not a silent clamp.
    let mut cfg = xlreg::server::ServerConfig::ephemeral();
    cfg.max_key_bits = 512;
    let e = xlreg::server::Server::start(cfg).await.unwrap_err();
    assert!(e.to_string().contains("max_key_bits"), "{e}");
}

/// CPU time of this whole process (server and client threads), from the
/// kernel's per-process clock (what /proc/self/stat's utime+stime count,
/// at nanosecond resolution).
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_hostile_session_costs_at_most_twice_a_normal_one() {
    // The registry key the server decrypts every Hello with is the default
    // 2048 bits, so a normal session's cost is what a user's server pays.
    let srv = server_with(|c| c.key_bits = 2048).await;
    let rc = srv.regcred();
    const N: usize = 30;
    let normal_token = token("m", 1, None, &["127.0.0.1:1"]);
    let hostile_token = long_exponent();
    // Warm up both paths (lazy statics, connection setup).
    Raw::go(rc).await.member(normal_token.clone()).await;
    Raw::go(rc)
        .await
        .call(&XlRegMsg::member(hostile_token.clone()))
        .await;
    let t0 = process_cpu();
    for _ in 0..N {
        let mut s = Raw::go(rc).await;
        s.member(normal_token.clone()).await;
        assert_eq!(s.call(&XlRegMsg::bye()).await.op, Some(12));
    }
    let normal = process_cpu() - t0;
    let t0 = process_cpu();
    for _ in 0..N {
        let mut s = Raw::go(rc).await;
        let r = s.call(&XlRegMsg::member(hostile_token.clone())).await;
        assert_eq!(r.op, Some(13), "{r:?}");
    }
    let refused = process_cpu() - t0;
    eprintln!("CPU for {N} sessions: normal {normal:?}, refused hostile {refused:?}");
    assert!(
        refused <= normal * 2,
        "a refused hostile session cost {refused:?}/{N}, a normal one {normal:?}/{N}"
    );
}
