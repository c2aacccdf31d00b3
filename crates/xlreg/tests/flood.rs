//! Floods and slowloris: connections that send nothing, stop inside the
//! Hello, or stop inside a session message must not keep the server from
//! serving a normal member; timeouts reclaim them; the connection limit
//! holds; memory stays bounded.

mod raw;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use raw::*;
use xlreg::wire::{Hello, XlRegMsg, GO_SERVER_VERSION};

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One normal member: create-free join into `c`, timed.
async fn normal_member(
    rc: &xlreg::regcred::RegCred,
    c: &xlreg::wire::NodeId,
    name: &str,
) -> Duration {
    let t = Instant::now();
    join_member(rc, c, name, 1).await;
    t.elapsed()
}

/// Open `n` hostile connections of three kinds; returns them (kept open).
async fn flood(rc: &xlreg::regcred::RegCred, n: usize) -> Vec<TcpStream> {
    let hello = Hello::new(GO_SERVER_VERSION).seal(&rc.comms_key).unwrap();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(rc.endpoints[0].as_str()).await.unwrap();
        match i % 3 {
            0 => {}                                                     // silent
            1 => s.write_all(&hello[..hello.len() / 2]).await.unwrap(), // half a Hello
            _ => {
                // Complete handshake, then half a session message.
                s.write_all(&hello).await.unwrap();
                s.write_all(&[0x42; 24]).await.unwrap();
            }
        }
        conns.push(s);
    }
    conns
}

async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 256];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut b)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // the HelloReply of kind 2
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_stalled_connections_do_not_delay_a_normal_member() {
    let srv = server_with(|c| {
        c.handshake_timeout = Duration::from_secs(2);
        c.message_timeout = Duration::from_secs(2);
        c.idle_timeout = Duration::from_secs(2);
    })
    .await;
    let rc = srv.regcred().clone();
    let c = create(&rc, "flooded", 64).await;
    let baseline = normal_member(&rc, &c, "before").await;
    let rss0 = rss_kib();
    let t = Instant::now();
    let mut conns = flood(&rc, 1000).await;
    let opened = t.elapsed();
    let during = normal_member(&rc, &c, "during").await;
    let rss1 = rss_kib();
    eprintln!(
        "flood: 1000 connections opened in {opened:?}; active {}; member before {baseline:?}, during {during:?}; RSS {} -> {} KiB (+{} KiB, test process incl. server)",
        srv.active_connections(),
        rss0,
        rss1,
        rss1.saturating_sub(rss0)
    );
    assert!(
        during < Duration::from_secs(1),
        "a normal member took {during:?} under the flood"
    );
    assert!(
        rss1.saturating_sub(rss0) < 64 * 1024,
        "memory grew by {} KiB",
        rss1 - rss0
    );
    // Timeouts reclaim every stalled connection.
    let t = Instant::now();
    for s in conns.iter_mut() {
        assert!(
            closed_by_server(s, Duration::from_secs(10)).await,
            "stalled connection not reclaimed"
        );
    }
    eprintln!(
        "flood: all 1000 reclaimed {:?} after the member",
        t.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(srv.active_connections(), 0);
    normal_member(&rc, &c, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_holds_and_waiting_clients_are_served_later() {
    let srv = server_with(|c| {
        c.max_connections = 50;
        c.handshake_timeout = Duration::from_millis(500);
    })
    .await;
    let rc = srv.regcred().clone();
    let c = create(&rc, "limited", 4).await;
    let conns = flood(&rc, 150).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let peak = srv.active_connections();
    assert!(peak <= 50, "{peak} connections served with a limit of 50");
    assert!(peak >= 40, "limit not reached? {peak}");
    // A normal member waits in the backlog until timeouts free slots.
    let t = Instant::now();
    join_member(&rc, &c, "patient", 1).await;
    eprintln!(
        "limit 50, 150 stalled: peak active {peak}, normal member served after {:?}",
        t.elapsed()
    );
    assert!(srv.active_connections() <= 50);
    drop(conns);
}

#[tokio::test]
async fn an_oversized_message_closes_only_that_session() {
    let srv = server().await;
    let rc = srv.regcred().clone();
    let c = create(&rc, "big-msg", 4).await;
    let mut bad = Raw::go(&rc).await;
    let mut good = Raw::go(&rc).await;
    good.member(token("good", 1, None, &["127.0.0.1:1"])).await;
    // 70 KiB of garbage, more than any request may be.
    let _ = bad.stream.write_all(&vec![0x11u8; 70 * 1024]).await;
    bad.expect_closed().await;
    assert_eq!(good.call(&XlRegMsg::join_by_id(&c)).await.op, Some(8));
}
