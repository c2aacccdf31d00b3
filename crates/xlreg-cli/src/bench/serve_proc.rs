//! What the registry benchmarks share: a real `xlreg serve` child process
//! with its CPU time and memory read from /proc, and member messages
//! signed beforehand so that clients spend nothing on RSA signing.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use xlreg::client::{ClientError, Connection};
use xlreg::regcred::RegCred;
use xlreg::testing::{keys, member_identity};
use xlreg::wire::{Tag, XlRegMsg};

/// `VmHWM` and `VmRSS` of `pid`, bytes.
pub(crate) fn rss(pid: u32) -> anyhow::Result<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    Ok((field("VmHWM:"), field("VmRSS:")))
}

/// An `xlreg serve` child process, stopped (SIGTERM, then reaped) on drop.
pub(crate) struct ServerProc {
    pub(crate) child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        // SAFETY: plain syscall on our own unreaped child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

impl ServerProc {
    /// User + system CPU time the server has used so far.
    pub(crate) fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu_time(self.child.id())
    }
}

/// User + system CPU time of process `pid` (from /proc/PID/stat).
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the ")" that closes the command name, from field 3
    // (state); utime and stime are fields 14 and 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0); // 14, 15
    Ok(Duration::from_secs_f64(ticks as f64 / tick))
}

/// How to run the `xlreg serve` under test.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Serve {
    /// Registry key size (`--key-bits`).
    pub(crate) key_bits: u32,
    /// `--ephemeral` (in-memory database) instead of a data directory.
    pub(crate) ephemeral: bool,
    /// `--log` filter; `None`: the default (`info`).
    pub(crate) log: Option<&'static str>,
    /// `--hold-ms`; `None`: the default (1000 ms).
    pub(crate) hold_ms: Option<u64>,
    /// `--cluster-ttl`; `None`: the default (`never`).
    pub(crate) cluster_ttl: Option<&'static str>,
}

impl Serve {
    /// What a user gets from `xlreg serve`: a data directory, a 2048-bit
    /// key, default logging and hold.
    pub(crate) const DEFAULT: Serve = Serve {
        key_bits: 2048,
        ephemeral: false,
        log: None,
        hold_ms: None,
        cluster_ttl: None,
    };

    /// A short description for table rows, e.g. `persistent, log info`.
    pub(crate) fn label(&self) -> String {
        format!(
            "{}, RSA-{}, log {}, hold {}",
            if self.ephemeral {
                "ephemeral"
            } else {
                "persistent"
            },
            self.key_bits,
            self.log.unwrap_or("info"),
            match self.hold_ms {
                None => "1000 ms".to_string(),
                Some(ms) => format!("{ms} ms"),
            }
        )
    }
}

/// Start `xlreg serve` (this executable) on a free loopback port with a
/// fresh identity in a temporary directory, configured by `how`; its log
/// goes to a file there (as a service's would to its journal). Returns
/// once it listens.
pub(crate) fn spawn_serve(how: Serve) -> anyhow::Result<(ServerProc, RegCred)> {
    let exe = std::env::current_exe().context("cannot find the xlreg executable")?;
    let dir = tempfile::Builder::new().prefix("xlreg-bench-").tempdir()?;
    let data = dir.path().join("data");
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut c = Command::new(&exe);
    if let Some(filter) = how.log {
        c.args(["--log", filter]);
    }
    c.args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--max-connections", "1024", "--key-bits"])
        .arg(how.key_bits.to_string())
        .arg("--data-dir")
        .arg(&data)
        .env_remove("XLREG_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    if let Some(ms) = how.hold_ms {
        c.args(["--hold-ms", &ms.to_string()]);
    }
    if how.ephemeral {
        c.arg("--ephemeral");
    }
    if let Some(ttl) = how.cluster_ttl {
        c.args(["--cluster-ttl", ttl]);
    }
    let mut child = c
        .spawn()
        .with_context(|| format!("starting {} serve", exe.display()))?;
    let out = child.stdout.take().expect("piped");
    let proc = ServerProc { child, _dir: dir };
    let mut lines = BufReader::new(out).lines();
    let mut listening = false;
    for l in lines.by_ref() {
        if l?.starts_with("listening on ") {
            listening = true;
            break;
        }
    }
    if !listening {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        bail!(
            "xlreg serve did not print `listening on ADDR`; its log:\n{}",
            log.trim_end()
        );
    }
    // Keep reading stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let rc = RegCred::load(data.join("regCred.dat"))?;
    Ok((proc, rc))
}

/// A member whose Member message is ready to send.
#[derive(Clone)]
pub(crate) struct PreSigned {
    pub(crate) member: XlRegMsg,
}

/// `n` members with `bits`-bit keys and signed Member messages, one
/// endpoint each.
pub(crate) async fn presigned(n: usize, bits: u32) -> anyhow::Result<Vec<PreSigned>> {
    let threads = keys::default_threads();
    let ks = tokio::task::spawn_blocking(move || {
        keys::generate_keys(2 * n, bits, keys::KeyGen::Fast, threads, &|| {})
    })
    .await??;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let node = member_identity(
            &format!("m{i:02}"),
            ks[2 * i].clone(),
            ks[2 * i + 1].clone(),
            vec![format!("127.0.0.1:{}", 20000 + i)],
        )?;
        out.push(PreSigned {
            member: XlRegMsg::member(node.token(0)?),
        });
    }
    Ok(out)
}

/// Send `msg`, expect a reply with op `want`.
pub(crate) async fn call(
    c: &mut Connection,
    msg: &XlRegMsg,
    want: Tag,
) -> Result<XlRegMsg, ClientError> {
    c.send(msg).await?;
    let r = c.recv("a reply").await?;
    if r.tag() != Some(want) {
        return Err(ClientError::BadReply(format!(
            "expected {want:?}, got op {:?}: {}",
            r.op,
            r.err_text()
        )));
    }
    Ok(r)
}
