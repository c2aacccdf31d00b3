//! `xlreg serve` holds up from outside (issue 21): a flood of slow and
//! idle connections on the HTTP side door, beyond its cap and beyond the
//! process's whole open-file limit, leaves `/healthz` and the registry
//! port working; a fresh data directory is 0700 whatever flags write into
//! it; a bad Hello is logged with one "hello:" prefix.

#[path = "../../xlreg/tests/raw/mod.rs"]
mod raw;
mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raw::*;
use xlreg::regcred::RegCred;
use xlreg::wire::{Which, XlRegMsg};

/// A running `xlreg serve`, its stderr collected as it comes.
struct Serve {
    child: Child,
    listen: SocketAddr,
    http: Option<SocketAddr>,
    regcred: Option<String>,
    stderr: Arc<Mutex<String>>,
}

impl Serve {
    /// Start `xlreg serve ARGS` with at most `nofile` open files (soft and
    /// hard limit, set in the child before exec) and wait for its address
    /// lines.
    fn start(args: &[&str], nofile: Option<u64>) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xlreg"));
        cmd.arg("serve")
            .args(args)
            .env("XLREG_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = nofile {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec here.
            unsafe {
                cmd.pre_exec(move || {
                    let rl = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (mut listen, mut http, mut regcred) = (None, None, None);
        let wants_http = args.contains(&"--http");
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "xlreg serve {args:?} exited early; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
            let line = line.trim();
            if let Some(a) = line.strip_prefix("listening on ") {
                listen = Some(a.parse().unwrap());
            } else if let Some(p) = line.strip_prefix("regCred: ") {
                regcred = Some(p.to_string());
            } else if let Some(a) = line.strip_prefix("http on http://") {
                http = Some(a.parse().unwrap());
            }
            if listen.is_some() && (!wants_http || http.is_some()) {
                break;
            }
        }
        std::thread::spawn(move || for _ in out.lines() {});
        Serve {
            child,
            listen: listen.unwrap(),
            http,
            regcred,
            stderr,
        }
    }

    /// SIGTERM, wait (bounded), and return everything it wrote to stderr.
    fn stop(self) -> String {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let out = support::wait_bounded(self.child, Duration::from_secs(20));
        assert!(out.status.success(), "serve exit: {:?}", out.status);
        std::thread::sleep(Duration::from_millis(100));
        let s = self.stderr.lock().unwrap().clone();
        s
    }
}

/// One `GET path` on a fresh connection: (status line, body, elapsed).
fn get(addr: SocketAddr, path: &str) -> (String, String, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("GET {path}: {e} after {:?}", t.elapsed()));
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body, t.elapsed())
}

/// Has the server closed this held connection?
fn closed_by_server(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 512];
    match (&mut &*s).read(&mut b) {
        Ok(0) => true,
        Ok(_) => closed_by_server(s),
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Raise this test process's own open-file limit (it holds the flood).
fn raise_own_nofile() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
    }
    rl.rlim_cur
}

/// The server's open-file limit in this test.
const NOFILE: u64 = 256;
/// Connections held on the HTTP port: beyond the HTTP cap and beyond the
/// server's whole open-file limit.
const HELD: usize = 600;

#[test]
fn http_flood_beyond_the_cap_and_the_open_file_limit_leaves_healthz_and_the_registry_working() {
    let own = raise_own_nofile();
    assert!(
        own > HELD as u64 + 64,
        "this test needs {HELD}+ open files, has {own}"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = Serve::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--key-bits",
            "1024",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        Some(NOFILE),
    );
    let http = srv.http.unwrap();
    let rc = RegCred::load(srv.regcred.as_ref().unwrap()).unwrap();

    // Hold the door: half the connections send nothing, half send half a
    // request and then drip one header byte every 200 ms.
    let mut idle = Vec::new();
    let mut slow = Vec::new();
    let mut healthz = Vec::new();
    for i in 0..HELD {
        let mut s = TcpStream::connect_timeout(&http, Duration::from_secs(10)).unwrap();
        if i % 2 == 0 {
            idle.push(s);
        } else {
            // The server may already have closed it to make room.
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
            slow.push(s);
        }
        // Check /healthz while the flood builds, not only after it.
        if i % 150 == 149 {
            healthz.push(get(http, "/healthz"));
        }
    }
    let drip = Instant::now();
    while drip.elapsed() < Duration::from_secs(1) {
        for s in &mut slow {
            let _ = s.write(b"a");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // With all of them still held on our side: /healthz, /readyz and a full
    // registry session (create, two joins, GetCluster, Byes).
    for _ in 0..3 {
        healthz.push(get(http, "/healthz"));
    }
    let (ready, _, _) = get(http, "/readyz");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Instant::now();
    let members = rt.block_on(async {
        let c = create(&rc, "flooded", 2).await;
        join_member(&rc, &c, "a", 1).await;
        join_member(&rc, &c, "b", 2).await;
        let mut s = Raw::go(&rc).await;
        s.member(token("reader", 3, None, &[])).await;
        let r = s.call(&XlRegMsg::get_cluster(&c, Which::ALL)).await;
        s.call(&XlRegMsg::bye()).await;
        r.tokens.len()
    });
    let session = t.elapsed();
    let closed = idle
        .iter()
        .chain(slow.iter())
        .filter(|s| closed_by_server(s))
        .count();
    let err = srv.stop();

    for (status, body, took) in &healthz {
        assert!(
            status.starts_with("HTTP/1.1 200") && body == "ok\n",
            "/healthz under the flood: {status:?} {body:?} after {took:?}"
        );
    }
    assert!(ready.starts_with("HTTP/1.1 200"), "/readyz: {ready}");
    assert_eq!(members, 2, "GetCluster lists both members");
    // The cap (lowered to fit 256 open files) held: the server closed all
    // but a cap's worth of the held connections to make room.
    assert!(
        err.contains("--http-max-connections 128 to 23"),
        "the lowered HTTP cap is announced: {err}"
    );
    assert!(
        closed >= HELD - 23,
        "only {closed} of {HELD} held connections were closed by the server"
    );
    assert!(!err.contains("Too many open files"), "{err}");
    assert!(!err.contains("accept failed"), "{err}");
    let worst = healthz.iter().map(|h| h.2).max().unwrap();
    eprintln!(
        "http flood: held {HELD} HTTP connections ({} idle, {} dripping a header) \
         against an open-file limit of {NOFILE} (HTTP cap lowered to 23): \
         the server closed {closed} of them; /healthz answered {}/{} (slowest {:?}); \
         a registry session (create, 2 joins, GetCluster) took {:?}",
        idle.len(),
        slow.len(),
        healthz.len(),
        healthz.len(),
        worst,
        session
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_fresh_data_dir_is_0700_whatever_flags_write_into_it() {
    let combos: &[&[&str]] = &[
        &[],
        &["--strict-perms"],
        &["--http", "127.0.0.1:0"],
        &["--http", "127.0.0.1:0", "--strict-perms"],
        &["--ephemeral"],
        &["--ephemeral", "--strict-perms"],
        &["--ephemeral", "--http", "127.0.0.1:0"],
        &["--ephemeral", "--http", "127.0.0.1:0", "--strict-perms"],
    ];
    let root = tempfile::tempdir().unwrap();
    for (i, flags) in combos.iter().enumerate() {
        // A data dir whose parent does not exist yet either.
        let data = root.path().join(format!("new{i}")).join("data");
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--key-bits",
            "1024",
            "--data-dir",
            data.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let err = Serve::start(&args, None).stop();
        assert_eq!(
            mode(&data),
            0o700,
            "{flags:?}: data dir mode; stderr:\n{err}"
        );
        assert!(
            !err.contains("accessible by group/others"),
            "{flags:?} warned about its own data dir: {err}"
        );
        if flags.contains(&"--http") {
            assert_eq!(mode(&data.join("admin.token")), 0o600, "{flags:?}");
        }
        assert!(data.join("regCred.dat").exists(), "{flags:?}");
    }
    // --init-only writes the identity only.
    let data = root.path().join("init").join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_xlreg"))
        .args(["serve", "--init-only", "--key-bits", "1024", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&data), 0o700, "--init-only");
}

#[test]
fn a_bad_hello_is_logged_with_one_hello_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let srv = Serve::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--key-bits",
            "1024",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        None,
    );
    // One RSA block (1024-bit key: 128 bytes) of garbage.
    let mut s = TcpStream::connect(srv.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[7u8; 128]).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "a bad Hello gets no reply");
    let err = srv.stop();
    assert!(
        err.contains("hello: RSA-OAEP decryption failed"),
        "the session-ended line names the Hello: {err}"
    );
    assert!(!err.contains("hello: hello:"), "{err}");
}
