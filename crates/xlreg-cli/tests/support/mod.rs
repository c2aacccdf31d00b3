//! Helpers shared by the tests that run the `xlreg` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// Wait for `child` at most `limit`, killing it (and failing) after that.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The example member program `examples/up_member.rs`, next to the xlreg
/// binary, built (once per test process, a no-op when up to date) so
/// that a test never runs a stale copy.
pub fn up_member_example(xlreg: &str) -> std::path::PathBuf {
    use std::path::Path;
    use std::sync::Mutex;
    static BUILT: Mutex<bool> = Mutex::new(false);
    let dir = Path::new(xlreg).parent().unwrap();
    let exe = dir.join("examples").join("up_member");
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built {
        let mut c = std::process::Command::new(env!("CARGO"));
        c.args(["build", "-p", "xlreg", "--example", "up_member"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.ends_with("release") {
            c.arg("--release");
        }
        let st = c.status().unwrap();
        assert!(st.success(), "cargo build --example up_member: {st}");
        *built = true;
    }
    assert!(exe.exists(), "{} not built", exe.display());
    exe
}

/// Is process `pid` alive (a zombie counts as gone)?
pub fn pid_alive(pid: i32) -> bool {
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = st
        .rsplit(')')
        .next()
        .is_some_and(|r| r.trim_start().starts_with('Z'));
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 && !zombie }
}

/// A running `xlreg up -- CMD`, its stderr lines as they come.
pub struct Up {
    xlreg: String,
    pub child: Child,
    lines: Receiver<String>,
    /// Its stdout's lines.
    pub out: Receiver<String>,
    pub seen: Vec<String>,
    /// Lines not matched by a wait yet.
    pending: std::collections::VecDeque<String>,
    pub name: String,
    pub run_dir: tempfile::TempDir,
}

/// The lines of `r`, as they come, from a thread.
pub fn lines_of(r: Option<impl std::io::Read + Send + 'static>) -> Receiver<String> {
    let (tx, lines) = channel();
    if let Some(r) = r {
        std::thread::spawn(move || {
            for l in BufReader::new(r).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
    }
    lines
}

impl Up {
    /// Start `xlreg up --name NAME ARGS -- CMD` with a private
    /// XDG_RUNTIME_DIR (its control socket's place).
    pub fn start(xlreg: &str, name: &str, args: &[&str], cmd: &[&str]) -> Up {
        let run_dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(xlreg)
            .args(["up", "--name", name])
            .args(args)
            .arg("--")
            .args(cmd)
            .env("XDG_RUNTIME_DIR", run_dir.path())
            .env_remove("XLREG_LOG")
            .env_remove("XLREG_KEY_POOL")
            .env_remove("XLREG_REGCRED")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, out) = (lines_of(child.stderr.take()), lines_of(child.stdout.take()));
        Up {
            xlreg: xlreg.into(),
            child,
            lines,
            out,
            seen: Vec::new(),
            pending: Default::default(),
            name: name.into(),
            run_dir,
        }
    }

    /// The first line not matched before for which `f` holds (waiting
    /// for it if need be).
    pub fn wait_for(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        if let Some(i) = self.pending.iter().position(|l| f(l)) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if f(&l) {
                        return l;
                    }
                    self.pending.push_back(l);
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no {what}; up said:\n{}", self.seen.join("\n"));
                }
            }
        }
    }

    /// Wait until the probes of `from` say `to` is (un)reachable.
    pub fn wait_reach(&mut self, from: usize, to: usize, reach: bool) {
        let want = format!("[m{from:02}] {{\"from\":{from},\"reach\":{reach},\"to\":{to}}}");
        self.wait_for(&want.clone(), |l| l == want);
    }

    /// A member program's start line: (pid, slot, id).
    pub fn wait_start(&mut self, member: usize) -> (i32, u64, String) {
        self.wait_start_of(&format!("m{member:02}"))
    }

    /// The start line of the program of member `name` (`examples/up_member.rs`
    /// prints one JSON line once it joined): (pid, slot, id).
    pub fn wait_start_of(&mut self, name: &str) -> (i32, u64, String) {
        let prefix = format!("[{name}] {{");
        let l = self.wait_for(&format!("start of {name}"), |l| {
            l.starts_with(&prefix) && l.contains("\"pid\"")
        });
        let v: serde_json::Value = serde_json::from_str(&l[prefix.len() - 1..]).unwrap();
        (
            v["pid"].as_i64().unwrap() as i32,
            v["slot"].as_u64().unwrap(),
            v["id"].as_str().unwrap().to_string(),
        )
    }

    /// Run `xlreg fault --cluster NAME WORDS…`.
    fn fault_output(&self, words: &[&str]) -> Output {
        Command::new(&self.xlreg)
            .args(["fault", "--cluster", &self.name])
            .args(words)
            .env("XDG_RUNTIME_DIR", self.run_dir.path())
            .output()
            .unwrap()
    }

    /// Run `xlreg fault --cluster NAME WORDS…`; its stdout.
    pub fn fault(&self, words: &[&str]) -> String {
        let out = self.fault_output(words);
        assert!(
            out.status.success(),
            "xlreg fault {words:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run `xlreg fault --cluster NAME WORDS…`, which up must refuse
    /// (exit 2); its stderr.
    pub fn fault_refused(&self, words: &[&str]) -> String {
        let out = self.fault_output(words);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "xlreg fault {words:?}: {err}");
        err
    }

    /// SIGINT to up, then its whole stderr once it has stopped.
    pub fn interrupt(mut self) -> String {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "up did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }
}

/// A cluster name unique to this test process and moment.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), rand_hex())
}

fn rand_hex() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{t:08x}")
}
