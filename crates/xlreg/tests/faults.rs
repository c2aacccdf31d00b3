//! Faults on demand in harness clusters (`LaunchOptions { faults: true }`):
//! a partition stops 0→1 while 1↔2 still talk, heal restores it, a delay
//! shows in a measured round trip, an open connection stalls and resumes —
//! over plain TCP and over the `xlreg::peer` TLS channel, which pins the
//! registered keys and so works through the proxies.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use xlreg::peer::{PeerConnector, PeerListener};
use xlreg::testing::{Direction, Fault, LaunchOptions, LocalCluster};

/// Long enough for a healthy loopback round trip on a loaded machine,
/// short enough to keep the failing checks quick.
const PATIENCE: Duration = Duration::from_millis(800);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Channel {
    Tcp,
    Tls,
}

async fn launch(faults: bool) -> LocalCluster {
    let c = LocalCluster::launch_with(LaunchOptions {
        size: 3,
        endpoints: 1,
        faults,
        ..LaunchOptions::default()
    })
    .await
    .unwrap();
    for (k, m) in c.members.iter().enumerate() {
        assert_eq!(m.index(), k, "launch order is the slot");
    }
    c
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// Every member echoes on its endpoint 0, over `ch`.
fn serve_echo(c: &mut LocalCluster, ch: Channel) {
    for m in &mut c.members {
        let l = m.take_listener(0).unwrap();
        match ch {
            Channel::Tcp => {
                tokio::spawn(async move {
                    while let Ok((s, _)) = l.accept().await {
                        tokio::spawn(echo(s));
                    }
                });
            }
            Channel::Tls => {
                let l = PeerListener::from_listener(l, &m.view, &m.identity).unwrap();
                tokio::spawn(async move {
                    loop {
                        match l.accept().await {
                            Ok((_, s)) => {
                                tokio::spawn(echo(s));
                            }
                            Err(e) => eprintln!("accept: {e}"),
                        }
                    }
                });
            }
        }
    }
}

/// One round trip of 4 bytes on an open stream, within `patience`.
async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    patience: Duration,
) -> Result<Duration, String> {
    let t = Instant::now();
    let r = tokio::time::timeout(patience, async {
        s.write_all(b"ping").await?;
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await?;
        assert_eq!(&b, b"ping");
        Ok::<_, std::io::Error>(())
    })
    .await;
    match r {
        Ok(Ok(())) => Ok(t.elapsed()),
        Ok(Err(e)) => Err(format!("round trip failed: {e}")),
        Err(_) => Err(format!("no answer within {patience:?}")),
    }
}

/// Member `from` dials member `to` as its view says, over `ch`, and
/// measures one round trip: `Err` if it fails or times out.
async fn ping(
    c: &LocalCluster,
    ch: Channel,
    from: usize,
    to: usize,
    patience: Duration,
) -> Result<Duration, String> {
    let m = &c.members[from];
    match ch {
        Channel::Tcp => {
            let addr = m.view.member(to).unwrap().endpoints[0].clone();
            let mut s = tokio::time::timeout(patience, TcpStream::connect(&addr))
                .await
                .map_err(|_| format!("connect to {addr}: no answer"))?
                .map_err(|e| format!("connect to {addr}: {e}"))?;
            round_trip(&mut s, patience).await
        }
        Channel::Tls => {
            let conn = PeerConnector::new(&m.view, &m.identity)
                .unwrap()
                .timeout(patience);
            let mut s = conn.connect(to).await.map_err(|e| e.to_string())?;
            round_trip(&mut s, patience).await
        }
    }
}

async fn partition_then_heal(ch: Channel) {
    let mut c = launch(true).await;
    serve_echo(&mut c, ch);
    let f = c.faults().expect("launched with faults").clone();
    ping(&c, ch, 0, 1, PATIENCE * 5)
        .await
        .expect("0->1 before the partition");

    f.partition(&[&[0], &[1, 2]]).unwrap();
    let cut = ping(&c, ch, 0, 1, PATIENCE).await;
    assert!(cut.is_err(), "0->1 must fail under the partition: {cut:?}");
    let back = ping(&c, ch, 1, 0, PATIENCE).await;
    assert!(
        back.is_err(),
        "1->0 must fail under the partition: {back:?}"
    );
    ping(&c, ch, 1, 2, PATIENCE * 5)
        .await
        .expect("1->2 under the partition");
    ping(&c, ch, 2, 1, PATIENCE * 5)
        .await
        .expect("2->1 under the partition");
    assert_eq!(
        f.current(),
        vec![Fault::Partition(vec![vec![0], vec![1, 2]])]
    );

    f.heal();
    assert!(f.current().is_empty());
    ping(&c, ch, 0, 1, PATIENCE * 5)
        .await
        .expect("0->1 after heal");
    let log = f.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[1].fault.is_none() && log[0].at <= log[1].at);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_stops_zero_to_one_keeps_one_and_two_talking_and_heal_restores_it_over_tcp() {
    partition_then_heal(Channel::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_stops_zero_to_one_keeps_one_and_two_talking_and_heal_restores_it_over_tls() {
    partition_then_heal(Channel::Tls).await;
}

async fn delay_shows_in_round_trip(ch: Channel) {
    let mut c = launch(true).await;
    serve_echo(&mut c, ch);
    let f = c.faults().unwrap().clone();
    let before = ping(&c, ch, 0, 1, PATIENCE * 5).await.unwrap();
    f.delay(0, 1, Duration::from_millis(200), Duration::ZERO)
        .unwrap();
    let slow = ping(&c, ch, 0, 1, PATIENCE * 5).await.unwrap();
    // TLS: the handshake's flights pass the delay too; the measured round
    // trip is the one after it.
    assert!(
        slow >= Duration::from_millis(200),
        "a 200 ms delay 0->1 must show in the round trip: {slow:?} (before: {before:?})"
    );
    let other = ping(&c, ch, 2, 1, PATIENCE * 5).await.unwrap();
    assert!(
        other < Duration::from_millis(200),
        "2->1 is not delayed: {other:?}"
    );
    f.heal();
    let after = ping(&c, ch, 0, 1, PATIENCE * 5).await.unwrap();
    assert!(
        after < Duration::from_millis(200),
        "heal removes the delay: {after:?}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200ms_delay_shows_in_a_measured_round_trip_over_tcp() {
    delay_shows_in_round_trip(Channel::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200ms_delay_shows_in_a_measured_round_trip_over_tls() {
    delay_shows_in_round_trip(Channel::Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_tls_connection_stalls_under_a_partition_and_resumes_after_heal() {
    let mut c = launch(true).await;
    serve_echo(&mut c, Channel::Tls);
    let f = c.faults().unwrap().clone();
    let m = &c.members[0];
    let mut s = PeerConnector::new(&m.view, &m.identity)
        .unwrap()
        .connect(1)
        .await
        .unwrap();
    round_trip(&mut s, PATIENCE * 5).await.unwrap();
    f.isolate(1).unwrap();
    let stalled = round_trip(&mut s, PATIENCE).await;
    assert!(stalled.is_err(), "isolated: {stalled:?}");
    f.heal();
    // The "ping" held by the partition arrives now, then a new one.
    let mut b = [0u8; 4];
    tokio::time::timeout(PATIENCE * 5, s.read_exact(&mut b))
        .await
        .expect("the held bytes pass after heal")
        .unwrap();
    assert_eq!(&b, b"ping");
    round_trip(&mut s, PATIENCE * 5).await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_cut_stalls_only_that_direction_of_an_open_connection() {
    let mut c = launch(true).await;
    let f = c.faults().unwrap().clone();
    let l = c.members[1].take_listener(0).unwrap();
    let addr = c.members[0].view.member(1).unwrap().endpoints[0].clone();
    let mut a = TcpStream::connect(&addr).await.unwrap();
    let (mut b, _) = l.accept().await.unwrap();
    f.cut(0, 1, Direction::OneWay).unwrap();
    a.write_all(b"from0").await.unwrap();
    b.write_all(b"from1").await.unwrap();
    let mut got = [0u8; 5];
    tokio::time::timeout(PATIENCE * 5, a.read_exact(&mut got))
        .await
        .expect("1->0 still passes")
        .unwrap();
    assert_eq!(&got, b"from1");
    let held = tokio::time::timeout(PATIENCE, b.read_exact(&mut got)).await;
    assert!(held.is_err(), "0->1 is cut: {held:?}");
    f.heal();
    tokio::time::timeout(PATIENCE * 5, b.read_exact(&mut got))
        .await
        .expect("0->1 passes after heal")
        .unwrap();
    assert_eq!(&got, b"from0");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_proxy_ports_for_peers_only_with_faults_on() {
    let c = launch(true).await;
    let mut seen = std::collections::HashSet::new();
    for m in &c.members {
        let me = m.view.self_member().unwrap();
        assert_eq!(me.endpoints, m.endpoints(), "own entry is as registered");
        for p in m.view.members.iter().filter(|p| p.index != m.index()) {
            let registered = c.members[p.index].endpoints();
            assert_ne!(p.endpoints, registered, "peer {} is proxied", p.index);
            assert!(seen.insert(p.endpoints[0].clone()), "one port per pair");
        }
    }
    assert_eq!(seen.len(), 6);
    let bad = c.faults().unwrap().isolate(3).unwrap_err();
    assert!(bad.to_string().contains("no member 3"), "{bad}");
    c.shutdown().await;

    let plain = launch(false).await;
    assert!(plain.faults().is_none());
    for m in &plain.members {
        for p in &m.view.members {
            assert_eq!(p.endpoints, plain.members[p.index].endpoints());
        }
    }
    plain.shutdown().await;
}

/// The example of README's "Breaking a test cluster on purpose", as shown
/// there (checked by `readme_shows_the_tested_faults_example`).
#[rustfmt::skip]
#[tokio::test]
async fn survives_a_partition() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = LocalCluster::launch_with(LaunchOptions { faults: true, ..Default::default() }).await?;
    let faults = cluster.faults().expect("launched with faults");
    faults.partition(&[&[0], &[1, 2]])?;   // 0 reaches no one; 1 <-> 2 still talk
    // ... check your system here ...
    faults.heal();                          // also releases held bytes
    faults.delay(0, 1, Duration::from_millis(200), Duration::from_millis(20))?;
    faults.cut(1, 2, Direction::OneWay)?;   // bytes 1 -> 2 stop, 2 -> 1 flow
    faults.drop(2, 0, 0.1)?;                // 10 % of chunks arrive one RTO late
    println!("{:?}", faults.current());     // read back what is in force
    faults.heal();
    Ok(())
}

#[test]
fn readme_shows_the_tested_faults_example() {
    let me = include_str!("faults.rs");
    let start = me
        .find("#[tokio::test]\nasync fn survives_a_partition")
        .unwrap();
    let len = me[start..].find("\n}\n").unwrap() + 3;
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains(&me[start..start + len]),
        "README must show survives_a_partition verbatim:\n{}",
        &me[start..start + len]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nemesis_alternates_the_faults_of_its_seed_with_heals_and_logs_them() {
    use xlreg::testing::faults::nemesis::plan;
    use xlreg::testing::faults::NemesisKind;
    let c = launch(true).await;
    let f = c.faults().unwrap().clone();
    let every = Duration::from_millis(100);
    let nem = f.nemesis(NemesisKind::PartitionHalves, every, 42);
    tokio::time::sleep(every * 7 + every / 2).await;
    nem.stop().await;
    let log = f.log();
    let applied: Vec<Fault> = log.iter().filter_map(|e| e.fault.clone()).collect();
    assert!(applied.len() >= 2, "{log:?}");
    assert_eq!(
        applied,
        plan(NemesisKind::PartitionHalves, 3, 42, applied.len())
    );
    // Fault, heal, fault, heal, ...; the stop heals last.
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e.fault.is_some(), i % 2 == 0, "entry {i}: {log:?}");
    }
    assert!(log.last().unwrap().fault.is_none());
    assert!(f.current().is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_set_on_an_open_connection_moving_bulk_data_applies_at_once_and_heal_lifts_it() {
    // A healthy link moves bytes on the fast path (splice on Linux); a
    // fault set while bytes flow must take over on that same connection.
    let mut c = launch(true).await;
    serve_echo(&mut c, Channel::Tcp);
    let f = c.faults().unwrap().clone();
    let addr = c.members[0].view.member(1).unwrap().endpoints[0].clone();
    let s = TcpStream::connect(&addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    // 8 MiB through and back, byte for byte, on the healthy link.
    let data: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    let (mut r, mut w) = s.into_split();
    let send = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&send).await.unwrap();
        w
    });
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(PATIENCE * 20, r.read_exact(&mut back))
        .await
        .expect("8 MiB echoed")
        .unwrap();
    assert!(back == data, "the bytes arrive unchanged and in order");
    let mut s = r.reunite(writer.await.unwrap()).unwrap();
    let fast = round_trip(&mut s, PATIENCE * 5).await.unwrap();
    f.delay(0, 1, Duration::from_millis(200), Duration::ZERO)
        .unwrap();
    let slow = round_trip(&mut s, PATIENCE * 5).await.unwrap();
    assert!(
        slow >= Duration::from_millis(200),
        "the delay applies to the open connection: {slow:?} (before: {fast:?})"
    );
    f.heal();
    let after = round_trip(&mut s, PATIENCE * 5).await.unwrap();
    assert!(
        after < Duration::from_millis(200),
        "heal lifts it: {after:?}"
    );
    c.shutdown().await;
}
