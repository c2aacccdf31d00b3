//! The programs `xlreg up -- CMD` launches: one per member, each in its own
//! process group, output forwarded line by line, exits reported, and
//! signals sent to a group only while its leader is unreaped.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;
use xlreg::testing::UpEnv;

use super::ui::Ui;
use crate::cli::BadInput;

/// Time the launched programs get between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// The launched programs.
pub(super) struct Children {
    names: Vec<String>,
    /// Where to send a signal for a program's process group; `None` once
    /// its exit was reported.
    signals: Vec<Option<mpsc::UnboundedSender<i32>>>,
    statuses: Vec<Option<String>>,
    /// Exits, by member index.
    pub(super) exits: mpsc::UnboundedReceiver<(usize, std::io::Result<ExitStatus>)>,
    tasks: tokio::task::JoinSet<()>,
}

impl Children {
    /// Start one copy of `cmd` per member environment.
    pub(super) fn spawn(cmd: &[String], envs: &[UpEnv], ui: &Ui) -> anyhow::Result<Self> {
        let (tx, exits) = mpsc::unbounded_channel();
        let mut kids = Children {
            names: Vec::new(),
            signals: Vec::new(),
            statuses: Vec::new(),
            exits,
            tasks: tokio::task::JoinSet::new(),
        };
        for (i, env) in envs.iter().enumerate() {
            let mut c = tokio::process::Command::new(&cmd[0]);
            c.args(&cmd[1..])
                .envs(env.vars())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .process_group(0);
            // SAFETY: prctl is async-signal-safe; nothing else runs here.
            // The child gets SIGTERM if up dies without cleaning up.
            unsafe {
                c.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
            let mut child = match c.spawn() {
                Ok(ch) => ch,
                Err(e) => {
                    let err = BadInput(format!("cannot run {}: {e}", Path::new(&cmd[0]).display()));
                    kids.kill_all(libc::SIGKILL);
                    return Err(err.into());
                }
            };
            let name = env.member_name.clone();
            if let Some(out) = child.stdout.take() {
                kids.tasks.spawn(forward(out, name.clone(), ui.clone()));
            }
            if let Some(err) = child.stderr.take() {
                kids.tasks.spawn(forward(err, name.clone(), ui.clone()));
            }
            let (sig_tx, sig_rx) = mpsc::unbounded_channel();
            kids.signals.push(Some(sig_tx));
            kids.names.push(name);
            kids.statuses.push(None);
            kids.tasks.spawn(supervise(child, sig_rx, i, tx.clone()));
        }
        Ok(kids)
    }

    /// Programs whose exit has not been reported yet.
    pub(super) fn running(&self) -> usize {
        self.signals.iter().filter(|p| p.is_some()).count()
    }

    /// Note an exit and report it at once on stderr (name and exit
    /// status); returns its description. Only a failure makes `up` fail.
    pub(super) fn record(&mut self, i: usize, st: std::io::Result<ExitStatus>) -> String {
        self.signals[i] = None;
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
            let deadline = Instant::now() + wait;
            while self.running() > 0 {
                match tokio::time::timeout_at(deadline, self.exits.recv()).await {
                    Ok(Some((i, st))) => {
                        // Exits by our signal are not failures.
                        self.signals[i] = None;
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
