//! The control socket of `up -- CMD`, which `xlreg fault` talks to (see
//! [`crate::cli::fault`] for where it lives and its line protocol), and,
//! with `--faults`, the fault proxies between the member programs.
//!
//! Each program learns its peers' endpoints as the ports of its own
//! proxies through `XLREG_PEER_ENDPOINTS`, which `UpEnv::boot` (Rust and
//! Python) puts into the view it returns; the registry keeps the
//! registered endpoints. Network faults act in the proxies at once;
//! process faults (pause, resume, kill, restart) and membership changes
//! (replace, evict, resize: [`Changer`]) are carried out by the loop that
//! owns the programs ([`Children`]), which answers through the request's
//! reply channel. Without `--faults` the socket still serves the process
//! and membership actions; network ones are refused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use xlreg::client::up_env::env;
use xlreg::client::UpEnv;
use xlreg::testing::{FaultEvent, FaultProxies, Faults};

use super::change::Changer;
use super::children::Children;
use super::ui::Ui;
use crate::cli::fault::{self, Action};

/// Variables added to one program's environment.
pub(super) type EnvVars = Vec<(&'static str, String)>;

/// A request from `xlreg fault`, and where its answer goes (`Ok(text)`
/// or `Err(why)`).
pub(super) struct Request {
    pub action: Action,
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// The fault proxies of `--faults` and the printer of their log.
pub(super) struct Net {
    pub faults: Faults,
    _proxies: FaultProxies,
    printer: tokio::task::JoinHandle<()>,
}

impl Drop for Net {
    fn drop(&mut self) {
        self.printer.abort();
    }
}

type Reply = oneshot::Sender<Result<String, String>>;

/// The control socket, its requests, and (with `--faults`) the proxies.
pub(super) struct Control {
    pub net: Option<Net>,
    pub changer: Changer,
    pub requests: mpsc::Receiver<Request>,
    pub path: PathBuf,
    /// Requests waiting for a running member's program to exit (it was
    /// killed for them): restart, replace, evict.
    pending: HashMap<usize, (Action, Reply)>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Control {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `HH:MM:SS.mmm` UTC, for the fault log.
pub(super) fn stamp(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// Print a line of the fault log.
pub(super) fn log(ui: &Ui, what: &str) {
    ui.line(&format!("{} fault: {what}", stamp(SystemTime::now())));
}

impl Control {
    /// Listen on the control socket of cluster `name` and, with `faults`,
    /// start the proxies for the members of `envs`; returns also each
    /// member's `XLREG_PEER_ENDPOINTS` (none without `faults`).
    pub(super) fn start(
        name: &str,
        envs: &[UpEnv],
        ui: &Ui,
        faults: bool,
        changer: Changer,
    ) -> anyhow::Result<(Control, Vec<EnvVars>)> {
        let path = fault::socket_path(name)?;
        let listener = bind(&path)?;
        let (net, extra) = match faults {
            true => {
                let (n, extra) = start_proxies(envs, ui)?;
                (Some(n), extra)
            }
            false => (None, Vec::new()),
        };
        let (tx, requests) = mpsc::channel(16);
        let accept = tokio::spawn(accept_loop(listener, tx));
        Ok((
            Control {
                net,
                changer,
                requests,
                path,
                pending: HashMap::new(),
                accept,
            },
            extra,
        ))
    }

    /// Carry out one request and answer it (one on a running member that
    /// must exit first: once it has, see [`Control::exited`]).
    pub(super) async fn handle(&mut self, kids: &mut Children, ui: &Ui, req: Request) {
        let Request { action, reply } = req;
        match self.carry_out(kids, ui, &action).await {
            Ok(Some(r)) => {
                let _ = reply.send(r);
            }
            Ok(None) => {}
            Err(i) => {
                self.pending.insert(i, (action, reply));
            }
        }
    }

    /// `Ok(Some(answer))`, `Ok(None)` (nothing to answer), or `Err(i)`:
    /// member `i` was killed and the action goes on when it has exited.
    async fn carry_out(
        &mut self,
        kids: &mut Children,
        ui: &Ui,
        action: &Action,
    ) -> Result<Option<Result<String, String>>, usize> {
        let n = kids.len();
        let member = |i: usize| {
            if i < n {
                Ok(i)
            } else {
                Err(format!("there is no member {i} (members are 0..{n})"))
            }
        };
        if action.is_network() && self.net.is_none() {
            return Ok(Some(Err(
                "network faults need the fault proxies: start up with --faults".into(),
            )));
        }
        let r = match action {
            Action::Net(f) => {
                let text = f.to_string();
                let net = self.net.as_ref().expect("checked above");
                net.faults
                    .apply(f.clone())
                    .map(|()| text)
                    .map_err(|e| e.to_string())
            }
            Action::Heal => {
                self.net.as_ref().expect("checked above").faults.heal();
                Ok("heal".into())
            }
            Action::Status => {
                let mut out = match &self.net {
                    None => "faults: off (up runs without --faults)".to_string(),
                    Some(net) => {
                        let cur: Vec<String> =
                            net.faults.current().iter().map(|f| f.to_string()).collect();
                        match cur.is_empty() {
                            true => "faults: none".into(),
                            false => format!("faults: {}", cur.join("; ")),
                        }
                    }
                };
                out.push_str(&format!("\nsize: {}", self.changer.size));
                for i in 0..n {
                    out.push_str(&format!("\n{i} {}: {}", kids.name(i), kids.state(i)));
                }
                Ok(out)
            }
            Action::Pause(i) | Action::Resume(i) | Action::Kill(i) => {
                let i = match member(*i) {
                    Ok(i) => i,
                    Err(e) => return Ok(Some(Err(e))),
                };
                let (sig, verb) = match action {
                    Action::Pause(_) => (libc::SIGSTOP, "pause"),
                    Action::Resume(_) => (libc::SIGCONT, "resume"),
                    _ => (libc::SIGKILL, "kill"),
                };
                let pid = kids.pid(i);
                kids.signal(i, sig).map(|()| {
                    match sig {
                        libc::SIGSTOP => kids.paused[i] = true,
                        libc::SIGCONT => kids.paused[i] = false,
                        _ => kids.fault_killed[i] = true,
                    }
                    let t = format!("{verb} {i} ({}, pid {})", kids.name(i), pid.unwrap_or(0));
                    log(ui, &t);
                    t
                })
            }
            Action::Restart(i) | Action::Replace(i) | Action::Evict(i) => {
                let i = match member(*i) {
                    Ok(i) => i,
                    Err(e) => return Ok(Some(Err(e))),
                };
                if let Err(e) = self.refused(kids, action, i) {
                    return Ok(Some(Err(e)));
                }
                if !matches!(action, Action::Restart(_)) {
                    if let Err(e) = self.changer.can_change().await {
                        return Ok(Some(Err(e)));
                    }
                }
                if kids.pid(i).is_some() {
                    if let Err(e) = kids.signal(i, libc::SIGKILL) {
                        return Ok(Some(Err(e)));
                    }
                    kids.fault_killed[i] = true;
                    let verb = match action {
                        Action::Restart(_) => "restart",
                        Action::Replace(_) => "replace",
                        _ => "evict",
                    };
                    log(ui, &format!("kill {i} ({}) to {verb} it", kids.name(i)));
                    return Err(i);
                }
                self.go_on(kids, ui, action, i).await
            }
            Action::Resize(size) => {
                let r = self.changer.resize(kids, *size).await;
                if let Ok(t) = &r {
                    log(ui, t);
                }
                r
            }
        };
        // (Network faults are logged by the printer as they apply.)
        Ok(Some(r))
    }

    /// Why `action` on member `i` cannot be done, if it cannot.
    fn refused(&self, kids: &Children, action: &Action, i: usize) -> Result<(), String> {
        let size = self.changer.size as usize;
        match action {
            Action::Restart(_) if kids.evicted[i] => Err(format!(
                "{} was evicted: `replace {i}` starts a new member in its slot",
                kids.name(i)
            )),
            Action::Replace(_) | Action::Evict(_) if i >= size => Err(format!(
                "slot {i} is beyond the cluster's size {size} (`resize` grows it)"
            )),
            Action::Evict(_) if kids.evicted[i] => Err(format!("slot {i} is empty already")),
            _ => Ok(()),
        }
    }

    /// Restart, replace or evict member `i`, whose program is not running.
    async fn go_on(
        &mut self,
        kids: &mut Children,
        ui: &Ui,
        action: &Action,
        i: usize,
    ) -> Result<String, String> {
        let r = match action {
            Action::Restart(_) => return start_again(kids, ui, i),
            Action::Replace(_) => self.changer.replace(kids, i).await,
            _ => self.changer.evict(kids, i).await,
        };
        if let Ok(t) = &r {
            log(ui, t);
        }
        r
    }

    /// Member `i` exited: go on with the request that waited for that.
    pub(super) async fn exited(&mut self, kids: &mut Children, ui: &Ui, i: usize) {
        if let Some((action, reply)) = self.pending.remove(&i) {
            let r = self.go_on(kids, ui, &action, i).await;
            let _ = reply.send(r);
        }
    }

    /// A request is waiting for a program to exit.
    pub(super) fn busy(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// The proxies for the members of `envs`, the printer of their log, and
/// each member's `XLREG_PEER_ENDPOINTS`.
fn start_proxies(envs: &[UpEnv], ui: &Ui) -> anyhow::Result<(Net, Vec<EnvVars>)> {
    let targets = envs
        .iter()
        .map(|e| {
            e.endpoints
                .iter()
                .map(|a| {
                    a.parse::<SocketAddr>()
                        .with_context(|| format!("endpoint {a:?} of {}", e.member_name))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (faults, proxies) = Faults::start(&targets).context("starting the fault proxies")?;
    let extra = (0..envs.len())
        .map(|me| {
            let spec: Vec<String> = (0..envs.len())
                .filter(|&p| p != me)
                .map(|p| {
                    let eps: Vec<String> = (0..targets[p].len())
                        .filter_map(|k| proxies.addr(me, p, k))
                        .map(|a| a.to_string())
                        .collect();
                    format!("{p}={}", eps.join(","))
                })
                .collect();
            vec![(env::PEER_ENDPOINTS, spec.join(";"))]
        })
        .collect();
    let mut events = faults.subscribe();
    let ui2 = ui.clone();
    let printer = tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match events.recv().await {
                Ok(FaultEvent { at, fault }) => {
                    let what = fault.map_or("heal".to_string(), |f| f.to_string());
                    ui2.line(&format!("{} fault: {what}", stamp(at)));
                }
                Err(RecvError::Lagged(n)) => ui2.line(&format!("fault: ({n} changes not shown)")),
                Err(RecvError::Closed) => return,
            }
        }
    });
    Ok((
        Net {
            faults,
            _proxies: proxies,
            printer,
        },
        extra,
    ))
}

fn start_again(kids: &mut Children, ui: &Ui, i: usize) -> Result<String, String> {
    match kids.restart(i) {
        Ok(pid) => {
            let t = format!("restart {i} ({}, pid {pid})", kids.name(i));
            log(ui, &t);
            Ok(t)
        }
        Err(e) => Err(format!("restarting {}: {e:#}", kids.name(i))),
    }
}

/// Listen on `path`, replacing a socket left by an `up` that was killed;
/// refused while another `up` answers there.
fn bind(path: &std::path::Path) -> anyhow::Result<UnixListener> {
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "another `xlreg up` serves this cluster name at {}",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))?;
    Ok(l)
}

async fn accept_loop(l: UnixListener, tx: mpsc::Sender<Request>) {
    loop {
        let Ok((s, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(serve(s, tx));
    }
}

/// How long a client may take to send its request, and to take the answer.
const CLIENT_WAIT: Duration = Duration::from_secs(60);

/// One request: a line of words (at most 4 KiB), then the answer (which
/// may take as long as the action: a replace or resize waits up to
/// `--wait` for the new programs to join).
async fn serve(s: UnixStream, tx: mpsc::Sender<Request>) -> std::io::Result<()> {
    let (r, mut w) = s.into_split();
    let mut line = String::new();
    use tokio::io::AsyncReadExt;
    let mut r = BufReader::new(r.take(4096));
    tokio::time::timeout(CLIENT_WAIT, r.read_line(&mut line)).await??;
    let words: Vec<String> = line.split_whitespace().map(String::from).collect();
    let answer = match fault::parse(&words) {
        Err(e) => Err(e),
        Ok(action) => {
            let (reply, rx) = oneshot::channel();
            if tx.send(Request { action, reply }).await.is_err() {
                Err("up is stopping".to_string())
            } else {
                rx.await.unwrap_or_else(|_| Err("up is stopping".into()))
            }
        }
    };
    let text = match answer {
        Ok(t) if t.is_empty() => "ok\n".to_string(),
        Ok(t) => format!("{t}\nok\n"),
        Err(e) => format!("error: {}\n", e.replace('\n', " ")),
    };
    tokio::time::timeout(CLIENT_WAIT, w.write_all(text.as_bytes())).await?
}
