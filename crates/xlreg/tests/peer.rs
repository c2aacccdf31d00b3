//! Members talking to each other over `xlreg::peer`: mutually
//! authenticated TLS 1.3 pinned to the keys the registry returned, between
//! real members of in-process clusters on loopback. Every refusal is
//! checked on both sides: the side that refuses says why, the refused side
//! says it was refused.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use xlreg::client::{NodeIdentity, NodeOptions};
use xlreg::peer::PeerAcceptor;
use xlreg::peer::{LocalCert, Peer, PeerConnector, PeerError, PeerListener, Pins, Refusal};
use xlreg::testing::{LaunchOptions, LocalCluster};
use xlreg::wire::{NodeId, PrivateKey};

const HOUR: Duration = Duration::from_secs(3600);

async fn launch(size: u32, endpoints: u32) -> LocalCluster {
    LocalCluster::launch_with(LaunchOptions {
        size,
        endpoints,
        ..LaunchOptions::default()
    })
    .await
    .unwrap()
}

/// A peer listener on endpoint `ep` of the cluster's `k`-th member.
fn listener(c: &mut LocalCluster, k: usize, ep: usize) -> PeerListener {
    let m = &mut c.members[k];
    let l = m.take_listener(ep).unwrap();
    PeerListener::from_listener(l, &m.view, &m.identity).unwrap()
}

fn connector(c: &LocalCluster, k: usize) -> PeerConnector {
    let m = &c.members[k];
    PeerConnector::new(&m.view, &m.identity).unwrap()
}

fn stranger(name: &str) -> NodeIdentity {
    NodeIdentity::generate(&NodeOptions {
        name: Some(name.into()),
        endpoints: None,
        key_bits: 1024,
    })
    .unwrap()
}

fn refusal(r: Result<(Peer, xlreg::peer::PeerStream), PeerError>) -> Refusal {
    match r {
        Err(e @ PeerError::Refused { .. }) => {
            eprintln!("listener: {e}");
            e.refusal().cloned().unwrap()
        }
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok((p, _)) => panic!("expected a refusal, {p} was accepted"),
    }
}

fn refused_by_peer<T>(r: Result<T, PeerError>) -> String {
    match r {
        Err(e @ PeerError::RefusedByPeer { .. }) => {
            eprintln!("refused side: {e}");
            e.to_string()
        }
        Err(e) => panic!("expected the peer to refuse us, got {e}"),
        Ok(_) => panic!("expected the peer to refuse us, it accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_pairs_of_a_five_member_cluster_authenticate_each_other_and_exchange_bytes() {
    let mut c = launch(5, 1).await;
    let mut servers = Vec::new();
    for k in 0..5 {
        let l = listener(&mut c, k, 0);
        let me = c.members[k].index();
        servers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..4 {
                let (peer, mut s) = l.accept().await.unwrap();
                assert_eq!(s.ssl().version_str(), "TLSv1.3");
                let mut b = [0u8; 2];
                s.read_exact(&mut b).await.unwrap();
                // The dialer says who it is; the handshake proved it.
                assert_eq!(peer.index(), Some(b[0] as usize));
                assert_eq!(b[1] as usize, me);
                s.write_all(&[me as u8, b[0]]).await.unwrap();
                seen.push(b[0] as usize);
            }
            seen.sort();
            seen
        }));
    }
    let mut dialers = Vec::new();
    for k in 0..5 {
        let conn = connector(&c, k);
        let me = c.members[k].index();
        let names: Vec<(usize, String)> = c.members[k]
            .view
            .peers()
            .map(|m| (m.index, m.name.clone()))
            .collect();
        dialers.push(tokio::spawn(async move {
            for (j, name) in names {
                let mut s = conn.connect(j).await.unwrap();
                assert_eq!(
                    s.peer(),
                    &Peer::Member {
                        index: j,
                        name: name.clone()
                    }
                );
                assert!(s.handshake_time() > Duration::ZERO);
                s.write_all(&[me as u8, j as u8]).await.unwrap();
                let mut b = [0u8; 2];
                s.read_exact(&mut b).await.unwrap();
                assert_eq!(b, [j as u8, me as u8]);
            }
        }));
    }
    for d in dialers {
        d.await.unwrap();
    }
    for (k, s) in servers.into_iter().enumerate() {
        let me = c.members[k].index();
        let want: Vec<usize> = (0..5).filter(|&i| i != me).collect();
        assert_eq!(s.await.unwrap(), want);
    }
    c.shutdown().await;
}

#[tokio::test]
async fn a_peer_with_the_same_name_but_another_key_is_refused_on_both_sides() {
    let mut c = launch(2, 1).await;
    let l = listener(&mut c, 0, 0);
    let (a, b) = (&c.members[0].view, c.members[1].view.self_member().unwrap());
    // An impostor dials under member b's name with its own key.
    let impostor = stranger(&b.name);
    let conn = PeerConnector::with_cert(
        a.cluster_id,
        &a.members,
        Some(LocalCert::generate(&impostor).unwrap()),
    )
    .unwrap();
    let (srv, cli) = tokio::join!(l.accept(), conn.connect(a.self_index));
    let why = refusal(srv);
    assert_eq!(
        why,
        Refusal::KeyNotPinned {
            sha256: impostor.sig_key.public().fingerprint(),
            expected: format!("any member of cluster {}", a.cluster_id),
        }
    );
    let e = refused_by_peer(cli);
    assert!(e.contains("did not accept our certificate"), "{e}");

    // The impostor answers on an endpoint in b's place: the honest dialer
    // refuses it, and the impostor learns it was refused.
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap().to_string();
    let fake = PeerListener::with_acceptor(
        tcp,
        PeerAcceptor::with_cert(
            Pins::all_members(a.cluster_id, &a.members),
            LocalCert::generate(&impostor).unwrap(),
        )
        .unwrap(),
    );
    let honest = connector(&c, 0);
    let (srv, cli) = tokio::join!(
        fake.accept(),
        honest.connect_pinned(Pins::one_member(a.cluster_id, b), &addr)
    );
    match cli {
        Err(PeerError::Refused {
            why: Refusal::KeyNotPinned { expected, .. },
            ..
        }) => assert!(expected.contains(&format!("member {} ({})", b.index, b.name))),
        other => panic!("the dialer must refuse the impostor: {other:?}"),
    }
    let e = refused_by_peer(srv);
    assert!(e.contains("did not accept our certificate"), "{e}");
    c.shutdown().await;
}

#[tokio::test]
async fn a_member_of_another_cluster_is_refused_on_both_sides() {
    let mut ours = launch(2, 1).await;
    let theirs = launch(2, 1).await;
    let l = listener(&mut ours, 0, 0);
    let addr = l.local_addr().unwrap().to_string();
    // A member of the other cluster dials our endpoint, taking it for one
    // of its own peers.
    let t = &theirs.members[0].view;
    let peer = t.peers().next().unwrap();
    let conn = connector(&theirs, 0);
    let (srv, cli) = tokio::join!(
        l.accept(),
        conn.connect_pinned(Pins::one_member(t.cluster_id, peer), &addr)
    );
    assert_eq!(
        refusal(srv),
        Refusal::WrongCluster {
            // The binding is a keyed hash: the listener cannot tell (and an
            // observer cannot see) which cluster the dialer meant.
            theirs: xlreg::peer::internals::UNKNOWN_CLUSTER.into(),
            ours: ours.id().to_hex()
        }
    );
    let e = refused_by_peer(cli);
    assert!(e.contains("another cluster"), "{e}");
    ours.shutdown().await;
    theirs.shutdown().await;
}

#[tokio::test]
async fn a_registered_key_bound_to_another_cluster_id_is_refused_on_both_sides() {
    let mut c = launch(2, 1).await;
    let l = listener(&mut c, 0, 0);
    let addr = l.local_addr().unwrap().to_string();
    let target = c.members[0].view.self_member().unwrap().clone();
    // Member 1's real certificate, but the connection is bound to another
    // cluster: as when one node is registered in two clusters.
    let other = NodeId::random();
    let pins = Pins {
        cluster_id: other,
        ..Pins::one_member(c.id(), &target)
    };
    let conn = connector(&c, 1);
    let (srv, cli) = tokio::join!(l.accept(), conn.connect_pinned(pins, &addr));
    assert_eq!(
        refusal(srv),
        Refusal::WrongCluster {
            theirs: xlreg::peer::internals::UNKNOWN_CLUSTER.into(),
            ours: c.id().to_hex()
        }
    );
    let e = refused_by_peer(cli);
    assert!(e.contains("ALPN cluster binding"), "{e}");
    c.shutdown().await;
}

#[tokio::test]
async fn a_plain_tcp_client_is_refused_as_not_speaking_tls() {
    let mut c = launch(2, 1).await;
    let l = listener(&mut c, 0, 0);
    let addr = l.local_addr().unwrap();
    let client = async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        // The listener answers one plain line saying what it wants, and
        // closes.
        let _ = s.read_to_end(&mut buf).await;
        buf
    };
    let (srv, answer) = tokio::join!(l.accept(), client);
    match srv {
        Err(
            e @ PeerError::NotTls {
                first_byte: b'G', ..
            },
        ) => {
            assert!(e.to_string().contains("does not speak TLS"), "{e}")
        }
        other => panic!("expected NotTls, got {other:?}"),
    }
    assert_eq!(answer, xlreg::peer::internals::NOT_TLS_ANSWER);
    assert!(String::from_utf8_lossy(&answer).contains("speak TLS 1.3"));
    c.shutdown().await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_unless_the_listener_allows_anonymous_clients() {
    let mut c = launch(2, 2).await;
    let strict = listener(&mut c, 0, 0);
    let open = listener(&mut c, 0, 1).allow_anonymous(true);
    let v = c.members[0].view.clone();
    let anon = PeerConnector::anonymous(v.cluster_id, &v.members).unwrap();
    let (srv, cli) = tokio::join!(strict.accept(), anon.connect(v.self_index));
    assert_eq!(
        refusal(srv),
        Refusal::NoCertificate {
            cluster: v.cluster_id.to_hex()
        }
    );
    let e = refused_by_peer(cli);
    assert!(e.contains("presented none"), "{e}");

    // A listener that takes clients: the client still authenticates the
    // member, and the member sees an anonymous client.
    let (srv, cli) = tokio::join!(open.accept(), anon.connect_endpoint(v.self_index, 1));
    let (peer, mut s) = srv.unwrap();
    assert_eq!(peer, Peer::Anonymous);
    let mut cli = cli.unwrap();
    assert_eq!(cli.peer().index(), Some(v.self_index));
    cli.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ping");
    c.shutdown().await;
}

#[tokio::test]
async fn a_self_made_certificate_is_refused_on_both_sides() {
    let mut c = launch(2, 1).await;
    let l = listener(&mut c, 0, 0);
    let v = c.members[0].view.clone();
    let key = PrivateKey::generate(1024).unwrap();
    let now = SystemTime::now();
    let cert = LocalCert::generate_with(&key, "anyone", now - HOUR, now + HOUR).unwrap();
    let conn = PeerConnector::with_cert(v.cluster_id, &v.members, Some(cert)).unwrap();
    let (srv, cli) = tokio::join!(l.accept(), conn.connect(v.self_index));
    match refusal(srv) {
        Refusal::KeyNotPinned { sha256, .. } => assert_eq!(sha256, key.public().fingerprint()),
        other => panic!("expected KeyNotPinned, got {other}"),
    }
    refused_by_peer(cli);
    c.shutdown().await;
}

#[tokio::test]
async fn an_expired_certificate_of_a_registered_key_is_refused_on_both_sides() {
    let mut c = launch(2, 1).await;
    let l = listener(&mut c, 0, 0);
    let v = c.members[0].view.clone();
    let b = &c.members[1].identity;
    let now = SystemTime::now();
    let expired =
        LocalCert::generate_with(&b.sig_key, &b.name, now - 3 * HOUR, now - HOUR).unwrap();
    let conn = PeerConnector::with_cert(v.cluster_id, &v.members, Some(expired.clone())).unwrap();
    let (srv, cli) = tokio::join!(l.accept(), conn.connect(v.self_index));
    assert!(matches!(refusal(srv), Refusal::Expired { .. }));
    let e = refused_by_peer(cli);
    assert!(e.contains("expired"), "{e}");

    // And a listener presenting an expired certificate is refused by the
    // dialer.
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap().to_string();
    let stale = PeerListener::with_acceptor(
        tcp,
        PeerAcceptor::with_cert(Pins::all_members(v.cluster_id, &v.members), expired).unwrap(),
    );
    let member_b = c.members[1].view.self_member().unwrap().clone();
    let honest = connector(&c, 0);
    let (srv, cli) = tokio::join!(
        stale.accept(),
        honest.connect_pinned(Pins::one_member(v.cluster_id, &member_b), &addr)
    );
    match cli {
        Err(PeerError::Refused {
            why: Refusal::Expired { .. },
            ..
        }) => {}
        other => panic!("the dialer must refuse an expired certificate: {other:?}"),
    }
    let e = refused_by_peer(srv);
    assert!(e.contains("expired"), "{e}");
    c.shutdown().await;
}

/// Forward one connection from `front` to `back`, appending every byte
/// the dialer sends to `up` and every byte it receives to `down`.
async fn observing_proxy(
    front: TcpListener,
    back: String,
    up: Arc<Mutex<Vec<u8>>>,
    down: Arc<Mutex<Vec<u8>>>,
) {
    let (a, _) = front.accept().await.unwrap();
    let b = TcpStream::connect(back).await.unwrap();
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    async fn pump(
        mut r: tokio::net::tcp::OwnedReadHalf,
        mut w: tokio::net::tcp::OwnedWriteHalf,
        seen: Arc<Mutex<Vec<u8>>>,
    ) {
        let mut buf = vec![0u8; 16384];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                    if w.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = w.shutdown().await;
    }
    tokio::join!(pump(ar, bw, up), pump(br, aw, down));
}

/// Member 0's peer listener behind an [`observing_proxy`]: the listener,
/// the proxy's address (to dial) and the proxy's task.
async fn behind_observer(
    c: &mut LocalCluster,
    up: Arc<Mutex<Vec<u8>>>,
    down: Arc<Mutex<Vec<u8>>>,
) -> (PeerListener, String, tokio::task::JoinHandle<()>) {
    let l = listener(c, 0, 0);
    let back = l.local_addr().unwrap().to_string();
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front_addr = front.local_addr().unwrap().to_string();
    let proxy = tokio::spawn(observing_proxy(front, back, up, down));
    (l, front_addr, proxy)
}

/// Member 1 dials member 0 at `addr` (e.g. a proxy in front of it).
async fn dial_member0(c: &LocalCluster, addr: &str) -> xlreg::peer::PeerStream {
    let target = c.members[0].view.self_member().unwrap().clone();
    connector(c, 1)
        .connect_pinned(Pins::one_member(c.id(), &target), addr)
        .await
        .unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_passive_observer_on_a_loopback_proxy_sees_no_plaintext() {
    let mut c = launch(2, 1).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (l, front_addr, proxy) = behind_observer(&mut c, seen.clone(), seen.clone()).await;
    let secret = b"attack at dawn, the password is swordfish-0123456789;".repeat(200);
    let server = async {
        let (_, mut s) = l.accept().await.unwrap();
        let mut got = vec![0u8; secret.len()];
        s.read_exact(&mut got).await.unwrap();
        s.write_all(&got).await.unwrap();
        s.shutdown().await.unwrap();
        got
    };
    let client = async {
        let mut s = dial_member0(&c, &front_addr).await;
        s.write_all(&secret).await.unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).await.unwrap();
        back
    };
    let (got, echoed) = tokio::join!(server, client);
    assert_eq!(got, secret);
    assert_eq!(echoed, secret);
    proxy.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    // Both directions went through the observer...
    assert!(seen.len() > 2 * secret.len(), "{} bytes seen", seen.len());
    // ...which saw the ALPN binding (sent in the clear)...
    assert!(contains(&seen, xlreg::peer::ALPN_PREFIX.as_bytes()));
    // ...but not the cluster ID it binds (raw, or in hex either case)...
    let id = c.id();
    assert!(!contains(&seen, id.as_bytes()));
    assert!(!contains(&seen, id.to_hex().as_bytes()));
    assert!(!contains(&seen, id.to_hex().to_uppercase().as_bytes()));
    // ...nor the message nor who was talking: in TLS 1.3 the certificates
    // (names, keys) are encrypted too.
    assert!(!contains(&seen, b"swordfish"));
    for m in &c.members {
        assert!(!contains(&seen, m.identity.name.as_bytes()));
        assert!(!contains(&seen, m.identity.sig_key.public().spki_der()));
    }
    c.shutdown().await;
}

/// TLS records in a byte stream (each a 5-byte header and its body).
fn records(mut b: &[u8]) -> usize {
    let mut n = 0;
    while b.len() >= 5 {
        let len = u16::from_be_bytes([b[3], b[4]]) as usize;
        b = &b[(5 + len).min(b.len())..];
        n += 1;
    }
    n
}

/// Send `messages` framed messages (4-byte length, then 100 bytes) through
/// an observing proxy, vectored or as two writes each; the records the
/// dialer sent.
async fn framed_messages_upstream_records(vectored: bool, messages: usize) -> usize {
    let mut c = launch(2, 1).await;
    let up = Arc::new(Mutex::new(Vec::new()));
    let (l, front_addr, proxy) = behind_observer(&mut c, up.clone(), Default::default()).await;
    let head = 100u32.to_be_bytes();
    let body: Vec<u8> = (0..100u8).collect();
    let server = async {
        let (_, mut s) = l.accept().await.unwrap();
        let mut got = vec![0u8; messages * 104];
        s.read_exact(&mut got).await.unwrap();
        s.write_all(b"K").await.unwrap();
        s.shutdown().await.unwrap();
        got
    };
    let client = async {
        let mut s = dial_member0(&c, &front_addr).await;
        for _ in 0..messages {
            if vectored {
                let (mut h, mut b) = (&head[..], &body[..]);
                while !h.is_empty() || !b.is_empty() {
                    let bufs = [std::io::IoSlice::new(h), std::io::IoSlice::new(b)];
                    let n = s.write_vectored(&bufs).await.unwrap();
                    let from_h = n.min(h.len());
                    (h, b) = (&h[from_h..], &b[n - from_h..]);
                }
            } else {
                s.write_all(&head).await.unwrap();
                s.write_all(&body).await.unwrap();
            }
        }
        s.flush().await.unwrap();
        let mut k = [0u8; 1];
        s.read_exact(&mut k).await.unwrap();
        s.shutdown().await.unwrap();
        k
    };
    let (got, k) = tokio::join!(server, client);
    assert_eq!(&k, b"K");
    let one: Vec<u8> = head.iter().chain(&body).copied().collect();
    assert_eq!(got, one.repeat(messages), "every byte arrives, in order");
    proxy.await.unwrap();
    c.shutdown().await;
    let up = up.lock().unwrap();
    records(&up)
}

#[tokio::test]
async fn the_pieces_of_a_vectored_write_travel_in_one_record() {
    let two_writes = framed_messages_upstream_records(false, 20).await;
    let vectored = framed_messages_upstream_records(true, 20).await;
    // Same handshake and close either way; one record per message fewer.
    assert_eq!(
        two_writes - vectored,
        20,
        "{two_writes} vs {vectored} records"
    );
}

#[tokio::test]
async fn a_vectored_write_larger_than_a_record_arrives_whole_and_in_order() {
    let mut c = launch(2, 1).await;
    let l = listener(&mut c, 0, 0);
    let pieces: Vec<Vec<u8>> = [0usize, 3, 10_000, 0, 9_000, 70_000, 1]
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
        .collect();
    let all: Vec<u8> = pieces.concat();
    let server = async {
        let (_, mut s) = l.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        got
    };
    let client = async {
        let mut s = connector(&c, 1).connect(0).await.unwrap();
        let mut slices: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        while slices.iter().any(|p| !p.is_empty()) {
            let bufs: Vec<std::io::IoSlice> =
                slices.iter().map(|p| std::io::IoSlice::new(p)).collect();
            let mut n = s.write_vectored(&bufs).await.unwrap();
            assert!(n > 0);
            for p in slices.iter_mut() {
                let k = n.min(p.len());
                *p = &p[k..];
                n -= k;
            }
        }
        s.shutdown().await.unwrap();
    };
    let (got, ()) = tokio::join!(server, client);
    assert_eq!(got.len(), all.len());
    assert!(got == all, "the bytes arrive in the order written");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_and_async_ends_interoperate_and_refuse_alike() {
    use std::io::{Read, Write};
    use xlreg::peer::BlockingPeerListener;
    let mut c = launch(2, 1).await;
    let async_l = listener(&mut c, 0, 0);
    let (v0, v1) = (c.members[0].view.clone(), c.members[1].view.clone());
    let (i0, i1) = (v0.self_index, v1.self_index);

    // A blocking dialer (member 1) to an async listener (member 0).
    let dialer = connector(&c, 1);
    let d = dialer.clone();
    let blocking = tokio::task::spawn_blocking(move || {
        let mut s = d.connect_blocking(i0).unwrap();
        assert_eq!(s.peer().index(), Some(i0));
        s.write_all(b"from a thread").unwrap();
        let mut b = [0u8; 2];
        s.read_exact(&mut b).unwrap();
        b
    });
    let (peer, mut s) = async_l.accept().await.unwrap();
    assert_eq!(peer.index(), Some(i1));
    let mut b = [0u8; 13];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"from a thread");
    s.write_all(b"ok").await.unwrap();
    assert_eq!(&blocking.await.unwrap(), b"ok");

    // A blocking listener (member 1) and an async dialer (member 0).
    let m1 = &mut c.members[1];
    let acceptor = PeerAcceptor::new(&m1.view, &m1.identity).unwrap();
    let bl = BlockingPeerListener::new(m1.take_std_listener(0).unwrap(), acceptor).unwrap();
    let server = tokio::task::spawn_blocking(move || {
        let (peer, mut s) = bl.accept().unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        s.write_all(&b).unwrap();
        // A client without a certificate is refused here too.
        let refused = bl.accept().map(|(p, _)| p);
        // And a plain-TCP client is told so.
        let plain = bl.accept().map(|(p, _)| p);
        (peer, b, refused, plain)
    });
    let mut s = connector(&c, 0).connect(i1).await.unwrap();
    s.write_all(b"hello").await.unwrap();
    let mut echo = [0u8; 5];
    s.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"hello");
    let anon = PeerConnector::anonymous(v0.cluster_id, &v0.members).unwrap();
    let cli = anon.connect(i1).await;
    let mut raw = TcpStream::connect(&v1.self_member().unwrap().endpoints[0])
        .await
        .unwrap();
    raw.write_all(b"hello?\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer).await;
    assert_eq!(answer, xlreg::peer::internals::NOT_TLS_ANSWER);
    let (peer, b, refused, plain) = server.await.unwrap();
    assert!(
        matches!(
            plain,
            Err(PeerError::NotTls {
                first_byte: b'h',
                ..
            })
        ),
        "{plain:?}"
    );
    assert_eq!(peer.index(), Some(i0));
    assert_eq!(&b, b"hello");
    match refused {
        Err(PeerError::Refused {
            why: Refusal::NoCertificate { .. },
            ..
        }) => {}
        other => panic!("the blocking listener must refuse an anonymous client: {other:?}"),
    }
    let e = refused_by_peer(cli);
    assert!(e.contains("presented none"), "{e}");
    c.shutdown().await;
}

#[tokio::test]
async fn a_dialer_that_stalls_does_not_delay_the_next_member() {
    let mut c = launch(2, 1).await;
    let l = listener(&mut c, 0, 0).handshake_timeout(Duration::from_secs(120));
    let addr = l.local_addr().unwrap();
    // One connects and says nothing; one starts a TLS record and stops.
    let _silent = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let conn = connector(&c, 1);
    let target = c.members[0].index();
    let (srv, cli) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(l.accept(), conn.connect(target))
    })
    .await
    .expect("the member waited behind the stalled dialers");
    assert_eq!(srv.unwrap().0.index(), Some(c.members[1].index()));
    assert_eq!(cli.unwrap().peer().index(), Some(target));
    c.shutdown().await;
}

#[tokio::test]
async fn a_tls_client_that_binds_no_cluster_is_refused_after_the_handshake() {
    // A generic TLS client (think `openssl s_client`) with a member's real
    // certificate but no ALPN: the listener's ALPN callback never runs, so
    // the check after the handshake must refuse it.
    let mut c = launch(2, 1).await;
    let l = listener(&mut c, 0, 0);
    let addr = l.local_addr().unwrap();
    let cert = LocalCert::generate(&c.members[1].identity).unwrap();
    let ctx = xlreg::peer::internals::client_context(Some(&cert)).unwrap();
    let client = async move {
        let mut ssl = openssl::ssl::Ssl::new(&ctx).unwrap();
        ssl.set_verify(openssl::ssl::SslVerifyMode::NONE);
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut s = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
        std::pin::Pin::new(&mut s).connect().await.unwrap();
        let mut b = [0u8; 1];
        // Never the acceptance byte: the listener closes.
        matches!(s.read(&mut b).await, Ok(0) | Err(_))
    };
    let (srv, closed) = tokio::join!(l.accept(), client);
    assert!(matches!(refusal(srv), Refusal::NoClusterBinding { .. }));
    assert!(closed);
    c.shutdown().await;
}

/// Texts in an error's chain (`{:#}`) that repeat: none may.
fn assert_each_cause_once(e: &(dyn std::error::Error + 'static)) {
    let mut texts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        assert!(
            !texts.iter().any(|earlier| earlier.contains(&t)),
            "{t:?} is printed twice by {}",
            xlreg::ErrorChain(e)
        );
        texts.push(t);
        cause = c.source();
    }
}

/// A loopback address nobody listens on.
async fn dead_address() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap().to_string();
    drop(l);
    a
}

#[tokio::test]
async fn a_refused_connection_is_retried_until_the_timeout_and_the_error_says_how_long() {
    let c = launch(2, 1).await;
    let target = c.members[0].view.self_member().unwrap().clone();
    let dead = dead_address().await;
    let conn = connector(&c, 1).timeout(Duration::from_millis(400));
    let t = std::time::Instant::now();
    let e = conn
        .connect_pinned(Pins::one_member(c.id(), &target), &dead)
        .await
        .unwrap_err();
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    let chain = xlreg::ErrorChain(&e).to_string();
    eprintln!("{chain}");
    assert!(chain.contains("refused on every attempt for 0."), "{chain}");
    assert!(chain.contains("one every 50 ms"), "{chain}");
    assert_eq!(chain.matches("onnection refused").count(), 1, "{chain}");
    assert_each_cause_once(&e);
    c.shutdown().await;
}

#[tokio::test]
async fn without_retries_a_refused_connection_fails_at_once() {
    let c = launch(2, 1).await;
    let target = c.members[0].view.self_member().unwrap().clone();
    let dead = dead_address().await;
    let conn = connector(&c, 1).retry_refused(false);
    let t = std::time::Instant::now();
    let e = conn
        .connect_pinned(Pins::one_member(c.id(), &target), &dead)
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    match &e {
        PeerError::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        other => panic!("expected the OS refusal, got {other}"),
    }
    assert!(!e.to_string().contains("every attempt"), "{e}");
    assert_each_cause_once(&e);
    // The blocking dialer has the same option.
    let conn2 = conn.clone();
    let pins = Pins::one_member(c.id(), &target);
    let e = tokio::task::spawn_blocking(move || conn2.connect_pinned_blocking(pins, &dead))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, PeerError::Io { .. }), "{e}");
    assert_each_cause_once(&e);
    c.shutdown().await;
}

#[test]
fn from_std_outside_a_runtime_is_an_error_not_a_panic() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = rt.block_on(launch(2, 1));
    let m = &mut c.members[0];
    let l = m.take_std_listener(0).unwrap();
    let e = PeerListener::from_std(l, &m.view, &m.identity).unwrap_err();
    assert!(matches!(e, PeerError::Usage(_)), "{e}");
    assert!(e.to_string().contains("outside a tokio runtime"), "{e}");
    rt.block_on(c.shutdown());
}

#[tokio::test]
async fn binding_a_harness_members_endpoint_hints_at_take_listener() {
    let c = launch(2, 1).await;
    let m = &c.members[0];
    let e = PeerListener::bind(&m.view, &m.identity, 0)
        .await
        .unwrap_err();
    match &e {
        PeerError::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse)
        }
        other => panic!("expected address in use, got {other}"),
    }
    let chain = xlreg::ErrorChain(&e).to_string();
    assert!(chain.contains("take_listener"), "{chain}");
    assert!(chain.contains("from_listener"), "{chain}");
    assert_each_cause_once(&e);
    c.shutdown().await;
}

#[tokio::test]
async fn a_refusal_after_the_client_finished_its_tls13_handshake_fails_its_first_read() {
    // TLS 1.3: the client's handshake is complete once it has sent its
    // certificate and Finished, before the server has checked that
    // certificate. A client driving the pinned OpenSSL objects itself
    // (as a binding may) with a key the registry does not list sees its
    // handshake succeed; the refusal arrives as an alert, and its first
    // read must fail with the reason, never return data or a clean end.
    let mut c = launch(2, 1).await;
    let l = listener(&mut c, 0, 0);
    let addr = l.local_addr().unwrap();
    let target = c.members[0].view.self_member().unwrap().clone();
    let impostor = LocalCert::generate(&stranger(&c.members[1].identity.name)).unwrap();
    let ctx = xlreg::peer::internals::client_context(Some(&impostor)).unwrap();
    let pins = Arc::new(Pins::one_member(c.id(), &target));
    let client = async move {
        let (ssl, _) = xlreg::peer::internals::client_ssl(&ctx, pins).unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut s = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
        std::pin::Pin::new(&mut s)
            .connect()
            .await
            .expect("the client's side of the handshake completes before the server's check");
        let mut b = [0u8; 1];
        let r = s.read(&mut b).await;
        let who = format!("member 0 at {addr}");
        (
            r.as_ref().map_err(|e| e.to_string()).copied(),
            xlreg::peer::internals::acceptance(r, b[0], &who),
        )
    };
    let (srv, (read, verdict)) = tokio::join!(l.accept(), client);
    assert!(matches!(refusal(srv), Refusal::KeyNotPinned { .. }));
    assert!(read.is_err(), "the first read must fail, got {read:?}");
    let e = refused_by_peer(verdict);
    assert!(e.contains("did not accept our certificate"), "{e}");
    // Through the library the same refusal ends `connect` itself.
    let conn =
        PeerConnector::with_cert(c.id(), &c.members[0].view.members, Some(impostor)).unwrap();
    let (srv, cli) = tokio::join!(l.accept(), conn.connect(target.index));
    assert!(matches!(refusal(srv), Refusal::KeyNotPinned { .. }));
    let e = refused_by_peer(cli);
    assert!(e.contains("did not accept our certificate"), "{e}");
    c.shutdown().await;
}

#[tokio::test]
async fn a_certificate_with_a_forged_key_binding_is_refused_on_both_sides() {
    // Members present a certificate on a fast P-256 key that their
    // registered sig key signed once. A dialer that copies member 1's
    // genuine binding onto its own key must be refused.
    let mut c = launch(2, 1).await;
    let l = listener(&mut c, 0, 0);
    let addr = l.local_addr().unwrap().to_string();
    let target = c.members[0].view.self_member().unwrap().clone();
    let genuine = connector(&c, 1).certificate().unwrap();
    assert!(genuine.is_bound(), "members present bound certificates");
    let binding = xlreg::peer::internals::binding_extension(genuine.cert())
        .unwrap()
        .unwrap();
    let now = SystemTime::now();
    let thief =
        LocalCert::bound_with(&stranger("thief").sig_key, "m01", now - HOUR, now + HOUR).unwrap();
    let forged = LocalCert::with_key_binding(
        thief.key().clone(),
        &c.members[1].identity.name,
        now - HOUR,
        now + HOUR,
        Some(&binding),
    )
    .unwrap();
    let conn = PeerConnector::with_cert(c.id(), &c.members[1].view.members, Some(forged)).unwrap();
    let (srv, cli) = tokio::join!(
        l.accept(),
        conn.connect_pinned(Pins::one_member(c.id(), &target), &addr)
    );
    let r = refusal(srv);
    assert!(matches!(r, Refusal::BadKeyBinding { .. }), "{r:?}");
    assert!(r.to_string().contains("does not verify"), "{r}");
    let e = refused_by_peer(cli);
    assert!(e.contains("did not accept our certificate"), "{e}");
    // The genuine certificate still works, and so does the older form
    // whose key is the registered sig key itself.
    let direct = LocalCert::generate_with(
        &c.members[1].identity.sig_key,
        "m01",
        now - HOUR,
        now + HOUR,
    )
    .unwrap();
    for cert in [genuine, direct] {
        let conn =
            PeerConnector::with_cert(c.id(), &c.members[1].view.members, Some(cert)).unwrap();
        let (srv, cli) = tokio::join!(
            l.accept(),
            conn.connect_pinned(Pins::one_member(c.id(), &target), &addr)
        );
        assert_eq!(srv.unwrap().0.index(), Some(c.members[1].index()));
        assert_eq!(cli.unwrap().peer().index(), Some(target.index));
    }
    c.shutdown().await;
}

/// Both ends of a channel made on one runtime move to runtimes of their
/// own (one per thread, as a binding's blocking calls use them); the first
/// runtime is shut down, and the TLS sessions go on: 1 MiB one way,
/// close_notify, an answer the other way.
#[test]
fn a_stream_moved_to_its_own_runtime_works_after_the_first_runtime_is_gone() {
    let shared = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (c, a, b) = shared.block_on(async {
        let mut c = launch(2, 1).await;
        let l = listener(&mut c, 0, 0);
        let conn = connector(&c, 1);
        let (accepted, dialed) = tokio::join!(l.accept(), conn.connect(0));
        let (_, mut a) = accepted.unwrap();
        let mut b = dialed.unwrap();
        b.write_all(b"before").await.unwrap();
        let mut got = [0u8; 6];
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"before");
        (c, a, b)
    });
    {
        let _g = shared.enter();
        drop(c);
    }
    let own = |mut s: xlreg::peer::PeerStream| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { s.move_to_current_runtime() }).unwrap();
        (rt, s)
    };
    let (rt_a, mut a) = own(a);
    let (rt_b, mut b) = own(b);
    shared.shutdown_timeout(Duration::from_secs(5));
    let blob: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let sent = blob.clone();
    let sender = std::thread::spawn(move || {
        rt_b.block_on(async {
            b.write_all(&sent).await.unwrap();
            b.shutdown().await.unwrap();
            let mut answer = Vec::new();
            b.read_to_end(&mut answer).await.unwrap();
            answer
        })
    });
    let got = rt_a.block_on(async {
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), a.read_to_end(&mut got))
            .await
            .expect("the moved stream delivers")
            .unwrap();
        a.write_all(b"all here").await.unwrap();
        a.shutdown().await.unwrap();
        got
    });
    assert_eq!(got.len(), blob.len());
    assert!(got == blob);
    assert_eq!(sender.join().unwrap(), b"all here");
}
