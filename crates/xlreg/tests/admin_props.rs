//! Property tests for what an outsider can throw at a registry without a
//! key (issue 21): the per-address registration limiter (any traffic, any
//! clock, many addresses) and the HTTP admin API (bad tokens, huge bodies,
//! odd paths and methods) against a real side door on loopback.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use xlreg::client::create_cluster_as;
use xlreg::client::{ClientOptions, ClusterSpec};
use xlreg::http::{AdminToken, HttpConfig, HttpServer};
use xlreg::server::internals::{RegistrationLimiter, MAX_TRACKED};
use xlreg::server::{Server, ServerConfig};
use xlreg::testing::{keys, member_identity};

// ---------------------------------------------------------------- limiter

/// One Member request: from address `addr` (an index), `dt_ms` after the
/// previous request.
fn traffic() -> impl Strategy<Value = Vec<(u8, u32)>> {
    prop::collection::vec((0u8..6, 0u32..400_000), 1..300)
}

fn ip(i: u8) -> IpAddr {
    if i % 2 == 0 {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))
    } else {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(i)))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Token-bucket bound: from its first request to any later moment t,
    /// an address is allowed at most `per_hour` + `per_hour` × t / 1 h.
    #[test]
    fn no_address_gets_more_than_its_burst_plus_its_rate(
        per_hour in 1u32..40,
        reqs in traffic(),
    ) {
        let l = RegistrationLimiter::new(per_hour);
        let t0 = Instant::now();
        let mut now = t0;
        let mut first: [Option<Instant>; 6] = [None; 6];
        let mut allowed = [0u64; 6];
        for (a, dt) in reqs {
            now += Duration::from_millis(u64::from(dt));
            let start = *first[a as usize].get_or_insert(now);
            if l.allow_at(ip(a), now) {
                allowed[a as usize] += 1;
            }
            let hours = now.duration_since(start).as_secs_f64() / 3600.0;
            let bound = f64::from(per_hour) * (1.0 + hours);
            prop_assert!(
                allowed[a as usize] as f64 <= bound + 1e-9,
                "address {a}: {} allowed, bound {bound}", allowed[a as usize]
            );
        }
    }

    /// One address's answers do not depend on anyone else's traffic.
    #[test]
    fn an_address_is_answered_the_same_whatever_others_send(
        per_hour in 1u32..20,
        reqs in traffic(),
    ) {
        let shared = RegistrationLimiter::new(per_hour);
        let alone = RegistrationLimiter::new(per_hour);
        let mut now = Instant::now();
        for (a, dt) in reqs {
            now += Duration::from_millis(u64::from(dt));
            let got = shared.allow_at(ip(a), now);
            if a == 0 {
                prop_assert_eq!(got, alone.allow_at(ip(0), now));
            }
        }
    }

    /// A fresh address gets exactly its burst at one instant, and a clock
    /// that runs backwards never hands out more (nor panics).
    #[test]
    fn a_burst_is_exactly_per_hour_and_a_backwards_clock_adds_nothing(
        per_hour in 1u32..200,
        back_ms in prop::collection::vec(0u64..10_000_000, 0..50),
    ) {
        let l = RegistrationLimiter::new(per_hour);
        let a = ip(3);
        let t = Instant::now() + Duration::from_secs(1_000_000);
        let burst = (0..per_hour + 5).filter(|_| l.allow_at(a, t)).count();
        prop_assert_eq!(burst, per_hour as usize);
        for ms in back_ms {
            prop_assert!(!l.allow_at(a, t - Duration::from_millis(ms)));
        }
    }
}

/// Many addresses: the table stops at `MAX_TRACKED`, a new address beyond
/// it is refused while the tracked ones are still served, and once their
/// buckets have refilled new addresses are admitted again.
#[test]
fn many_addresses_fill_the_table_to_its_bound_and_no_further() {
    let l = RegistrationLimiter::new(2);
    let t = Instant::now();
    let addr = |i: u32| IpAddr::V6(Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(i)));
    for i in 0..MAX_TRACKED as u32 {
        assert!(l.allow_at(addr(i), t), "address {i}");
    }
    let late = addr(MAX_TRACKED as u32 + 1);
    assert!(!l.allow_at(late, t), "the table is full");
    assert!(l.allow_at(addr(7), t), "a tracked address keeps its bucket");
    assert!(!l.allow_at(addr(7), t), "…and its limit");
    let hour = t + Duration::from_secs(3601);
    assert!(l.allow_at(late, hour), "refilled buckets make room");
}

// ---------------------------------------------------------------- admin API

const SECRET: &str = "prop-admin-token-0123456789abcdef";

/// One registry with a side door and a cluster named `keep`, shared by all
/// cases (the runtime lives as long as the test process).
fn door() -> SocketAddr {
    static DOOR: OnceLock<SocketAddr> = OnceLock::new();
    *DOOR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let server = Server::start(ServerConfig::ephemeral()).await.unwrap();
                let k = || keys::generate_key(1024, keys::KeyGen::Fast).unwrap();
                let admin = member_identity("admin", k(), k(), vec![]).unwrap();
                create_cluster_as(
                    server.regcred(),
                    &admin,
                    &ClusterSpec::new("keep", 3),
                    &ClientOptions::default(),
                )
                .await
                .unwrap();
                let token =
                    AdminToken::from_secret(SECRET, std::path::Path::new("<test>")).unwrap();
                let h = HttpServer::start(
                    HttpConfig {
                        listen: "127.0.0.1:0".parse().unwrap(),
                        token,
                    },
                    &server,
                )
                .await
                .unwrap();
                tx.send(h.local_addr()).unwrap();
                std::future::pending::<()>().await;
            });
        });
        rx.recv().unwrap()
    })
}

/// One raw HTTP/1.1 request (`head` is everything after the request line's
/// target up to the blank line); the status code and the body.
fn http(method: &str, target: &str, head: &[u8], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(door()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut req =
        format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n").into_bytes();
    req.extend_from_slice(head);
    req.extend_from_slice(b"\r\n");
    // The server may answer (413) and close before it has read everything.
    let _ = s.write_all(&req).and_then(|_| s.write_all(body));
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method} {target}: no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (code, body.to_string())
}

fn keep_is_there() -> bool {
    http("GET", "/api/clusters/keep", b"", b"").0 == 200
}

/// A token that is not the admin's: printable ASCII or obs-text bytes.
fn bad_token() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![0x21u8..0x7f, 0x80u8..=0xff, Just(b' ')], 0..300)
        .prop_filter("not the admin's token", |t| {
            t.trim_ascii() != SECRET.as_bytes()
        })
}

/// A request target: odd segments, percent escapes, dots, query strings.
fn odd_target() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("api".to_string()),
        Just("clusters".to_string()),
        Just("admin".to_string()),
        Just("delete".to_string()),
        Just("keep".to_string()),
        Just("..".to_string()),
        Just("".to_string()),
        Just("%00".to_string()),
        Just("%ff%fe".to_string()),
        Just("%2e%2e".to_string()),
        Just("%2F".to_string()),
        Just("%".to_string()),
        "[A-Za-z0-9._~!$&'()*+,;=:@-]{1,40}",
        "[A-Za-z0-9]{500,1500}",
    ];
    (
        prop::collection::vec(seg, 1..8),
        prop::option::of("[A-Za-z0-9=&%]{0,60}"),
    )
        .prop_map(|(segs, q)| {
            let mut t = format!("/{}", segs.join("/"));
            if let Some(q) = q {
                t.push('?');
                t.push_str(&q);
            }
            t
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any Authorization header but the admin's bearer token is refused
    /// with 401, by the JSON API and the form alike, and deletes nothing.
    #[test]
    fn any_token_but_the_admins_is_refused_and_deletes_nothing(
        scheme in prop_oneof![Just("Bearer "), Just("bearer "), Just("Basic "), Just("")],
        tok in bad_token(),
    ) {
        let mut head = b"Authorization: ".to_vec();
        head.extend_from_slice(scheme.as_bytes());
        head.extend_from_slice(&tok);
        head.extend_from_slice(b"\r\n");
        let (code, body) = http("DELETE", "/api/clusters/keep", &head, b"");
        prop_assert!((400..500).contains(&code), "DELETE answered {code}: {body}");
        let form: String = url_encode(&tok);
        let body = format!("name=keep&token={form}");
        let head = format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        );
        let (code, text) = http("POST", "/admin/delete", head.as_bytes(), body.as_bytes());
        prop_assert!((400..500).contains(&code), "form delete answered {code}: {text}");
        prop_assert!(keep_is_there());
    }

    /// Any method on any odd path is answered (no hang) with a page or a
    /// 4xx, never a 5xx; without the token nothing is deleted.
    #[test]
    fn odd_paths_and_methods_get_an_answer_below_500_and_delete_nothing(
        method in prop_oneof![
            Just("GET"), Just("POST"), Just("DELETE"), Just("PUT"),
            Just("HEAD"), Just("OPTIONS"), Just("PATCH"), Just("BREW")
        ],
        target in odd_target(),
    ) {
        let t = Instant::now();
        let (code, body) = if method == "HEAD" {
            // No body follows a HEAD answer; only the status matters.
            http(method, &target, b"", b"")
        } else {
            http(method, &target, b"Content-Length: 0\r\n", b"")
        };
        prop_assert!(code < 500, "{method} {target}: {code} {body}");
        prop_assert!(t.elapsed() < Duration::from_secs(10), "{method} {target} took {:?}", t.elapsed());
        prop_assert!(keep_is_there());
    }

    /// Bodies of any size: over the limit (64 KiB by default) a 413 that
    /// comes without the server reading it all, under it the usual 401.
    #[test]
    fn bodies_over_the_limit_get_413_and_under_it_are_read(
        len in prop_oneof![0usize..70_000, 60_000usize..80_000, Just(1usize << 40)],
        chunked in any::<bool>(),
    ) {
        const LIMIT: usize = xlreg::http::DEFAULT_MAX_BODY;
        let prefix = b"name=keep&token=x";
        // At most a little over the limit is sent: enough to cross it.
        let sent = len.min(LIMIT + 4096).max(prefix.len());
        let mut body = vec![b'a'; sent];
        body[..prefix.len()].copy_from_slice(prefix);
        let ty = "Content-Type: application/x-www-form-urlencoded\r\n";
        let (head, wire) = if chunked {
            let mut w = Vec::new();
            for c in body.chunks(8192) {
                w.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                w.extend_from_slice(c);
                w.extend_from_slice(b"\r\n");
            }
            if sent == len {
                w.extend_from_slice(b"0\r\n\r\n");
            }
            (format!("{ty}Transfer-Encoding: chunked\r\n"), w)
        } else {
            (format!("{ty}Content-Length: {}\r\n", len.max(prefix.len())), body)
        };
        let t = Instant::now();
        let (code, text) = http("POST", "/admin/delete", head.as_bytes(), &wire);
        if len.max(prefix.len()) > LIMIT {
            prop_assert_eq!(code, 413, "{} byte body: {}", len, text);
        } else {
            prop_assert_eq!(code, 401, "{} byte body: {}", len, text);
        }
        prop_assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
        prop_assert!(keep_is_there());
    }
}

fn url_encode(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_alphanumeric() {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}
