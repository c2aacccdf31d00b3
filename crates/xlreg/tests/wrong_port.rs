//! A regCred pointing at a port that is not the registry's (here the
//! registry's own HTTP side door) gives an error that says what answered
//! and what was expected, and the cheap shared reader identity reads a
//! cluster through the right port.

use xlreg::client::{self, ClientError, ClientOptions, ClusterRef, ClusterSpec};
use xlreg::http::{AdminToken, HttpConfig, HttpServer};
use xlreg::server::{Server, ServerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regcred_pointing_at_the_http_side_door_is_named_as_not_a_registry() {
    let server = Server::start(ServerConfig::ephemeral()).await.unwrap();
    let token = AdminToken::from_secret(
        "test-token-0123456789abcdef",
        std::path::Path::new("<test>"),
    )
    .unwrap();
    let http = HttpServer::start(
        HttpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token,
        },
        &server,
    )
    .await
    .unwrap();
    let opts = ClientOptions::default();
    let reader = client::reader_identity().await.unwrap();

    // The right port: the shared reader reads a new cluster.
    let rc = server.regcred().clone();
    let info = client::create_cluster(&rc, &ClusterSpec::new("wrong-port", 2), &opts)
        .await
        .unwrap();
    let list = client::read_members(&rc, &info.id, &reader, &opts)
        .await
        .unwrap();
    assert_eq!(list.cluster_id, info.id);
    assert!(list.members.is_empty());

    // The side door's port in the regCred.
    let mut wrong = rc.clone();
    let door = http.local_addr().to_string();
    wrong.endpoints = vec![door.clone()];
    let e = client::read_cluster(&wrong, &ClusterRef::Id(info.id), &reader, &opts)
        .await
        .unwrap_err();
    let text = xlreg::ErrorChain(&e).to_string();
    let named = text.contains(&format!("{door} is not an xlReg registry"))
        && text.contains("answered like an HTTP server");
    // A side door that resets instead of answering still gets the hint.
    let asked = text.contains("is this the port of an xlReg registry?");
    assert!(named || asked, "{text}");
    assert!(
        matches!(e, ClientError::BadReply(_) | ClientError::Io { .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn the_reader_identity_is_made_once_per_process_with_small_keys() {
    let a = client::reader_identity().await.unwrap();
    let b = client::reader_identity().await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(a.name, "reader");
    assert!(a.endpoints.is_empty());
    assert_eq!(a.sig_key.bits(), client::READER_KEY_BITS);
    assert_eq!(client::READER_KEY_BITS, xlreg::wire::MIN_MODULUS_BITS);
}
