//! The crate's error convention, checked on real failures: an error either
//! prints its cause or returns it from `source()`, never both, so that
//! `{:#}` and `xlreg::ErrorChain` print each text once. Each public error
//! type is made to fail the way a user meets it (a missing file, a dead
//! address, a busy port) and its whole chain is walked for repeats.

use std::error::Error;
use std::time::Duration;

use xlreg::client::NodeIdentity;
use xlreg::goconfig::GoRegistryConfig;
use xlreg::peer::{PeerConnector, PeerError, PeerListener, Pins};
use xlreg::regcred::RegCred;
use xlreg::testing::{KeyPool, LaunchOptions, LocalCluster};

/// Panics if a text of `e`'s chain appears again in a later link.
fn assert_each_cause_once(e: &(dyn Error + 'static)) {
    let chain = xlreg::ErrorChain(e).to_string();
    eprintln!("{chain}");
    let mut texts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        assert!(
            !t.is_empty() && !texts.iter().any(|earlier| earlier.contains(&t)),
            "{t:?} is printed twice (or empty) in: {chain}"
        );
        texts.push(t);
        cause = c.source();
    }
}

#[test]
fn file_errors_print_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let e = RegCred::load(&missing).unwrap_err();
    assert_each_cause_once(&e);
    let e = GoRegistryConfig::load(&missing).unwrap_err();
    assert_each_cause_once(&e);
    let e = NodeIdentity::load(&missing).unwrap_err();
    assert_each_cause_once(&e);
    // A key pool "directory" that is a file.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let e = KeyPool::open(file.join("pool")).unwrap_err();
    assert_each_cause_once(&e);
}

#[tokio::test]
async fn peer_errors_print_each_cause_once() {
    let c = LocalCluster::launch_with(LaunchOptions {
        size: 2,
        endpoints: 1,
        ..LaunchOptions::default()
    })
    .await
    .unwrap();
    // The OS error of a refused connection (the example).
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string()
    };
    let target = c.members[0].view.self_member().unwrap().clone();
    let conn = PeerConnector::new(&c.members[1].view, &c.members[1].identity)
        .unwrap()
        .timeout(Duration::from_millis(200));
    let e = conn
        .connect_pinned(Pins::one_member(c.id(), &target), &dead)
        .await
        .unwrap_err();
    assert!(matches!(e, PeerError::Io { .. }), "{e}");
    assert_each_cause_once(&e);
    let io: std::io::Error = e.into();
    assert_each_cause_once(&io);
    // A busy port.
    let m = &c.members[0];
    let e = PeerListener::bind(&m.view, &m.identity, 0)
        .await
        .unwrap_err();
    assert_each_cause_once(&e);
    c.shutdown().await;
}
