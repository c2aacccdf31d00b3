//! The programs `xlreg up -- CMD` launches: one per member, each in its own
//! process group, output forwarded line by line, exits reported, and
//! signals sent to a group only while its leader is unreaped.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use std::os::fd::AsRawFd;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;
use xlreg::client::up_env::env;
use xlreg::client::UpEnv;

use super::ui::Ui;
use crate::cli::BadInput;

/// Time the launched programs get between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// The launched programs.
pub(super) struct Children {
    cmd: Vec<String>,
    envs: Vec<UpEnv>,
    opts: SpawnOptions,
    ui: Ui,
    tx: mpsc::UnboundedSender<(usize, std::io::Result<ExitStatus>)>,
    names: Vec<String>,
    /// Where to send a signal for a program's process group; `None` once
    /// its exit was reported.
    signals: Vec<Option<mpsc::UnboundedSender<i32>>>,
    statuses: Vec<Option<String>>,
    /// The running program's PID.
    pids: Vec<Option<u32>>,
    /// Stopped by `xlreg fault pause`.
    pub(super) paused: Vec<bool>,
    /// Killed by `xlreg fault kill` / `restart`: its exit is no failure,
    /// and it may be restarted.
    pub(super) fault_killed: Vec<bool>,
    /// Evicted by `xlreg fault evict` (or `resize` below it): its slot is
    /// empty until `replace` or a `resize` starts a new program there.
    pub(super) evicted: Vec<bool>,
    /// Exits, by member index.
    pub(super) exits: mpsc::UnboundedReceiver<(usize, std::io::Result<ExitStatus>)>,
    /// Exits received while waiting for something else (see
    /// [`Children::next_exit`]).
    pub(super) backlog: std::collections::VecDeque<(usize, std::io::Result<ExitStatus>)>,
    tasks: tokio::task::JoinSet<()>,
}

/// How the programs are started, beyond their [`UpEnv`].
#[derive(Clone, Debug, Default)]
pub(super) struct SpawnOptions {
    /// More variables, per member (e.g. `XLREG_PEER_ENDPOINTS`).
    pub extra_env: Vec<Vec<(&'static str, String)>>,
    /// On restart, bind the member's endpoints again and pass them
    /// (`--listen-fds`).
    pub listen_fds: bool,
    /// The parent-death signal: SIGTERM, or SIGKILL when members may be
    /// paused (a stopped process ignores SIGTERM until continued).
    pub death_signal: i32,
}

impl Children {
    /// Start one copy of `cmd` per member environment.
    /// `sockets[i]`, when not empty, are passed to program i as
    /// descriptors 3, 4, … in the systemd socket-activation convention.
    pub(super) fn spawn(
        cmd: &[String],
        envs: &[UpEnv],
        sockets: &[Vec<std::net::TcpListener>],
        ui: &Ui,
        opts: SpawnOptions,
    ) -> anyhow::Result<Self> {
        let (tx, exits) = mpsc::unbounded_channel();
        let mut kids = Children {
            cmd: cmd.to_vec(),
            envs: envs.to_vec(),
            opts,
            ui: ui.clone(),
            tx,
            names: envs.iter().map(|e| e.member_name.clone()).collect(),
            signals: vec![None; envs.len()],
            statuses: vec![None; envs.len()],
            pids: vec![None; envs.len()],
            paused: vec![false; envs.len()],
            fault_killed: vec![false; envs.len()],
            evicted: vec![false; envs.len()],
            exits,
            backlog: Default::default(),
            tasks: tokio::task::JoinSet::new(),
        };
        for i in 0..envs.len() {
            let passed = sockets.get(i).map(Vec::as_slice).unwrap_or_default();
            if let Err(e) = kids.spawn_one(i, passed) {
                kids.kill_all(libc::SIGKILL);
                return Err(e);
            }
        }
        Ok(kids)
    }

    /// Start member `i`'s program (again), passing `passed` as its
    /// listening sockets.
    pub(super) fn spawn_one(
        &mut self,
        i: usize,
        passed: &[std::net::TcpListener],
    ) -> anyhow::Result<()> {
        let (cmd, env) = (&self.cmd, &self.envs[i]);
        let mut c = match passed.is_empty() {
            true => {
                let mut c = tokio::process::Command::new(&cmd[0]);
                c.args(&cmd[1..]);
                c
            }
            // LISTEN_PID must be the program's own PID: a shell sets
            // it to its own, then becomes the program (exec keeps the
            // PID).
            false => {
                let mut c = tokio::process::Command::new("/bin/sh");
                c.args(["-c", "LISTEN_PID=$$ exec \"$@\"", "xlreg-up"])
                    .args(cmd)
                    .env(env::LISTEN_FDS, passed.len().to_string())
                    .env(
                        env::LISTEN_FDNAMES,
                        (0..passed.len())
                            .map(|k| format!("endpoint{k}"))
                            .collect::<Vec<_>>()
                            .join(":"),
                    );
                c
            }
        };
        let mut fds = [-1i32; 16];
        for (slot, l) in fds.iter_mut().zip(passed) {
            *slot = l.as_raw_fd();
        }
        let nfds = passed.len().min(fds.len());
        c.env_remove(env::LISTEN_PID)
            .envs(env.vars())
            .envs(self.opts.extra_env.get(i).cloned().unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let death = match self.opts.death_signal {
            0 => libc::SIGTERM,
            s => s,
        };
        // SAFETY: prctl is async-signal-safe; nothing else runs here.
        // The child gets the death signal if up dies without cleaning up.
        unsafe {
            c.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, death);
                pass_fds(&fds[..nfds])
            });
        }
        let mut child = c
            .spawn()
            .map_err(|e| BadInput(format!("cannot run {}: {e}", Path::new(&cmd[0]).display())))?;
        let name = env.member_name.clone();
        if let Some(out) = child.stdout.take() {
            self.tasks
                .spawn(forward(out, name.clone(), self.ui.clone()));
        }
        if let Some(err) = child.stderr.take() {
            self.tasks.spawn(forward(err, name, self.ui.clone()));
        }
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        self.signals[i] = Some(sig_tx);
        self.pids[i] = child.id();
        self.paused[i] = false;
        self.fault_killed[i] = false;
        self.evicted[i] = false;
        self.statuses[i] = None;
        self.tasks
            .spawn(supervise(child, sig_rx, i, self.tx.clone()));
        Ok(())
    }

    /// Start member `i`'s program again, which must have exited: the
    /// same command and node directory (so the same ID and slot); with
    /// `--listen-fds` its endpoints are bound again and passed.
    pub(super) fn restart(&mut self, i: usize) -> anyhow::Result<u32> {
        let mut passed = Vec::new();
        if self.opts.listen_fds {
            for e in &self.envs[i].endpoints {
                let l = std::net::TcpListener::bind(e)
                    .with_context(|| format!("binding {e} again for {}", self.names[i]))?;
                passed.push(l);
            }
        }
        self.spawn_one(i, &passed)?;
        Ok(self.pids[i].unwrap_or(0))
    }

    /// Member names, by slot.
    pub(super) fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Slots up has had programs for (running or not).
    pub(super) fn len(&self) -> usize {
        self.envs.len()
    }

    /// Member `i`'s environment.
    pub(super) fn env(&self, i: usize) -> &UpEnv {
        &self.envs[i]
    }

    /// Give slot `i` (an existing one, whose program is not running, or
    /// the next new one) a new member: its next start runs with `env`.
    pub(super) fn set_member(&mut self, i: usize, env: UpEnv) {
        assert!(i <= self.envs.len(), "slot {i} after {}", self.envs.len());
        if i == self.envs.len() {
            self.envs.push(env.clone());
            self.names.push(env.member_name);
            self.signals.push(None);
            self.statuses.push(None);
            self.pids.push(None);
            self.paused.push(false);
            self.fault_killed.push(false);
            self.evicted.push(false);
        } else {
            self.names[i] = env.member_name.clone();
            self.envs[i] = env;
        }
    }

    /// The next exit: one held back first, else the next to arrive.
    pub(super) async fn next_exit(&mut self) -> Option<(usize, std::io::Result<ExitStatus>)> {
        match self.backlog.pop_front() {
            Some(e) => Some(e),
            None => self.exits.recv().await,
        }
    }

    /// The PID of member `i`'s program while it runs.
    pub(super) fn pid(&self, i: usize) -> Option<u32> {
        self.pids[i].filter(|_| self.signals[i].is_some())
    }

    /// Signal member `i`'s process group (only while its program runs).
    pub(super) fn signal(&self, i: usize, sig: i32) -> Result<(), String> {
        match &self.signals[i] {
            Some(tx) => tx
                .send(sig)
                .map_err(|_| format!("{} has just exited", self.names[i])),
            None => Err(format!("{} is not running", self.names[i])),
        }
    }

    /// What member `i` is doing, for `xlreg fault status`.
    pub(super) fn state(&self, i: usize) -> String {
        match (self.pid(i), self.paused[i], self.fault_killed[i]) {
            (Some(p), true, _) => format!("paused (pid {p})"),
            (Some(p), false, _) => format!("running (pid {p})"),
            (None, _, _) if self.evicted[i] => {
                "evicted (xlreg fault replace starts a new member in its slot)".into()
            }
            (None, _, true) => "killed (xlreg fault restart brings it back)".into(),
            (None, _, false) => match self.statuses[i].as_deref() {
                Some("") | None => "exited".into(),
                Some(why) => why.to_string(),
            },
        }
    }

    /// Members killed by a fault, not restarted yet.
    pub(super) fn awaiting_restart(&self) -> bool {
        (0..self.envs.len())
            .any(|i| self.fault_killed[i] && !self.evicted[i] && self.signals[i].is_none())
    }

    /// Programs whose exit has not been reported yet.
    pub(super) fn running(&self) -> usize {
        self.signals.iter().filter(|p| p.is_some()).count()
    }

    /// Note an exit and report it at once on stderr (name and exit
    /// status); returns its description. Only a failure makes `up` fail.
    pub(super) fn record(&mut self, i: usize, st: std::io::Result<ExitStatus>) -> String {
        self.signals[i] = None;
        self.paused[i] = false;
        if self.fault_killed[i] {
            let why = match st {
                Ok(s) => format!("member {} ended by xlreg fault ({s})", self.names[i]),
                Err(e) => format!("member {} ended by xlreg fault ({e})", self.names[i]),
            };
            eprintln!("xlreg up: {why}");
            self.statuses[i] = Some(String::new());
            return why;
        }
        let (why, failed) = match st {
            Ok(s) => (
                format!("member {} exited with {s}", self.names[i]),
                !s.success(),
            ),
            Err(e) => (
                format!("member {}: waiting for it failed: {e}", self.names[i]),
                true,
            ),
        };
        eprintln!("xlreg up: {why}");
        self.statuses[i] = Some(if failed { why.clone() } else { String::new() });
        why
    }

    /// The failures recorded so far.
    pub(super) fn failures(&self) -> Vec<String> {
        self.statuses
            .iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect()
    }

    /// Ask every running program's supervisor to signal its group.
    fn kill_all(&self, sig: i32) {
        for tx in self.signals.iter().flatten() {
            let _ = tx.send(sig);
        }
    }

    /// SIGTERM to every running program's group, SIGKILL after [`GRACE`],
    /// and reap them all.
    pub(super) async fn stop(&mut self) {
        let mut tries = [
            (libc::SIGTERM, GRACE),
            (libc::SIGKILL, Duration::from_secs(5)),
        ]
        .into_iter();
        while self.running() > 0 {
            let Some((sig, wait)) = tries.next() else {
                eprintln!("xlreg up: {} members did not stop", self.running());
                break;
            };
            self.kill_all(sig);
            // A paused program acts on SIGTERM only once continued.
            self.kill_all(libc::SIGCONT);
            let deadline = Instant::now() + wait;
            while self.running() > 0 {
                match tokio::time::timeout_at(deadline, self.next_exit()).await {
                    Ok(Some((i, st))) => {
                        // Exits by our signal are not failures.
                        self.signals[i] = None;
                        self.paused[i] = false;
                        match st {
                            Ok(s) if s.success() || s.code().is_none() => {
                                self.statuses[i] = Some(String::new())
                            }
                            other => {
                                let _ = self.record(i, other);
                            }
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        // The programs are gone: let their last lines reach stderr (the
        // forwarders end at EOF), unless something else holds the pipes.
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// In the child, before exec: make `fds` descriptors 3, 4, … (without
/// close-on-exec). First copies all of them above the target range, so
/// that no move overwrites one not moved yet. Only async-signal-safe calls,
/// no allocation.
fn pass_fds(fds: &[i32]) -> std::io::Result<()> {
    let n = fds.len() as i32;
    let mut tmp = [-1i32; 16];
    for (t, &fd) in tmp.iter_mut().zip(fds) {
        // SAFETY: fcntl on descriptors this process holds.
        *t = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3 + n) };
        if *t < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    for (k, &t) in tmp.iter().take(fds.len()).enumerate() {
        // SAFETY: as above; dup2 onto 3 + k clears close-on-exec there,
        // and `t` (>= 3 + n) is never a target.
        if unsafe { libc::dup2(t, 3 + k as i32) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Own one child: report its exit, and signal its process group on
/// request — only while the child is unreaped.
///
/// The group's ID is the child's PID. Once the child is reaped that number
/// may be reused, so `kill(-pid)` could hit a stranger's group. Here the
/// child is reaped only inside `child.wait()`, which this task alone polls,
/// first (`biased`): a signal request is acted on only after a poll that
/// found the child still unreaped (running, or a zombie still holding its
/// PID), and after the wait completes the task ends and never signals.
async fn supervise(
    mut child: tokio::process::Child,
    mut signals: mpsc::UnboundedReceiver<i32>,
    index: usize,
    exits: mpsc::UnboundedSender<(usize, std::io::Result<ExitStatus>)>,
) {
    let pid = child.id().map(|p| p as i32);
    let st = loop {
        tokio::select! {
            biased;
            st = child.wait() => break st,
            Some(sig) = signals.recv() => {
                if let Some(pid) = pid {
                    // SAFETY: plain syscall; `pid` is our unreaped child
                    // and the leader of its own group (process_group(0)).
                    unsafe {
                        libc::kill(-pid, sig);
                    }
                }
            }
        }
    };
    let _ = exits.send((index, st));
}

/// Copy a program's output to stderr, each line prefixed with its name.
async fn forward(r: impl tokio::io::AsyncRead + Unpin, name: String, ui: Ui) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        ui.line(&format!("[{name}] {l}"));
    }
}
