//! Replacing a Go xlReg: `serve --adopt reg.config` takes over the Go
//! server's ID and keys (from the reference server-state example), so a
//! client holding the Go server's regCred.dat works unchanged.

mod common;
mod raw;

use std::time::Duration;

use xlreg::regcred::RegCred;
use xlreg::server::{Server, ServerConfig};
use xlreg::wire::{Which, XlRegMsg};

#[tokio::test]
async fn adopted_go_identity_serves_clients_holding_the_go_regcred() {
    let Some(v) = common::vectors_dir() else {
        return;
    };
    let go_regcred = RegCred::load(v.join("server-state-example/regCred.dat")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::persistent(data.path());
    cfg.adopt = Some(v.join("server-state-example/reg.config"));
    cfg.hold = Duration::ZERO;
    let srv = Server::start(cfg).await.unwrap();
    let ours = srv.regcred().clone();
    assert_eq!(ours.id, go_regcred.id, "registry ID taken over");
    assert_eq!(ours.comms_key, go_regcred.comms_key, "comms key taken over");
    assert_eq!(ours.sig_key, go_regcred.sig_key, "sig key taken over");

    // A client with the Go regCred.dat (only the address differs: the Go
    // server advertised 127.0.0.1:45678).
    let mut client_rc = go_regcred.clone();
    client_rc.endpoints = ours.endpoints.clone();
    let c = raw::create(&client_rc, "after-adoption", 2).await;
    raw::join_member(&client_rc, &c, "m0", 1).await;
    let mut s = raw::Raw::go(&client_rc).await;
    s.member(raw::token("m1", 2, None, &["127.0.0.1:1"])).await;
    s.call(&XlRegMsg::join_by_id(&c)).await;
    assert_eq!(
        s.call(&XlRegMsg::get_cluster(&c, Which::ALL)).await.which,
        Some(0b11)
    );
    srv.shutdown().await;

    // The adoption is permanent: a restart without --adopt keeps the ID.
    let srv = Server::start(ServerConfig::persistent(data.path()))
        .await
        .unwrap();
    assert_eq!(srv.regcred().id, go_regcred.id);
    srv.shutdown().await;
    // Adopting into a data dir that holds another identity is refused.
    let other = tempfile::tempdir().unwrap();
    Server::start(ServerConfig::persistent(other.path()))
        .await
        .unwrap()
        .shutdown()
        .await;
    let mut cfg = ServerConfig::persistent(other.path());
    cfg.adopt = Some(v.join("server-state-example/reg.config"));
    let e = Server::start(cfg).await.unwrap_err().to_string();
    assert!(e.contains("refusing"), "{e}");
}
