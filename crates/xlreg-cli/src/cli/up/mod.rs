//! `xlreg up`: a new, uniquely named test cluster in seconds.
//!
//! Without `-- CMD` the members live in this process ([`LocalCluster`]):
//! keys are made on every core (or read from `--key-pool`) together with
//! the embedded registry's own, the registry starts on a free loopback port
//! (unless `--regcred` names another registry), the members boot through
//! the client library,
//! and the table (or `--json`) is printed. Then `up` exits, or with
//! `--keep` keeps the members' endpoints open (each answers a connection
//! with one line naming the member) until Ctrl-C.
//!
//! With `-- CMD ARGS...` it launches one copy of the program per member
//! instead, each with the [`UpEnv`] variables and a prepared node
//! directory, member i already joined into slot i by `up` itself
//! ([`slots`]: `XLREG_MEMBER_INDEX` is the slot), watches the registry
//! until every program has joined, prints the
//! table, and stays until Ctrl-C or until every copy has exited. Copies run
//! in their own process groups; on exit `up` sends each group SIGTERM, then
//! SIGKILL after [`children::GRACE`]. Their output goes to stderr, each line prefixed
//! with the member name.

//!
//! Files: [`args`] (flags and their checks), [`in_process`] and
//! [`with_command`] (the two launch flows), [`report`] (the table and the
//! JSON), [`ui`] (progress bars), [`children`] (launched programs: output,
//! exits, signals), [`control`] (the socket of `xlreg fault`; with
//! `--faults` the proxies), [`change`] (replace, evict, resize).

mod args;
mod change;
mod children;
mod control;
mod in_process;
mod report;
mod shared;
mod slots;
mod ui;
mod with_command;

use anyhow::{bail, Context};

use crate::cli::cred::load_cred;
use crate::cli::serve::Signals;
use crate::cli::{runtime, BadInput};
pub use args::UpArgs;
use ui::Ui;
use xlreg::testing;

/// Run `xlreg up`.
pub fn run(a: UpArgs) -> anyhow::Result<()> {
    testing::check_shape(a.size, a.endpoints).map_err(|e| BadInput(e.to_string()))?;
    if !(a.wait.is_finite() && a.wait > 0.0 && a.wait <= 86_400.0) {
        bail!(BadInput(format!("--wait {} must be in (0, 86400]", a.wait)));
    }
    if let Some(n) = &a.name {
        if xlreg::limits::check_cluster_name(n.as_bytes()).is_err()
            || n.chars().any(char::is_control)
        {
            bail!(BadInput(format!(
                "--name {n:?}: 1 to {} bytes, no control characters",
                xlreg::limits::MAX_CLUSTER_NAME
            )));
        }
    }
    if a.faults && a.command.is_empty() {
        bail!(BadInput(
            "--faults puts proxies between the programs of `-- CMD`; there is none \
             (in a test, use LaunchOptions { faults: true } or LocalCluster(faults=True))"
                .into()
        ));
    }
    if a.listen_fds && a.command.is_empty() {
        bail!(BadInput(
            "--listen-fds hands sockets to the programs of `-- CMD`; there is none".into()
        ));
    }
    let external = match &a.regcred {
        Some(p) => {
            let rc = load_cred(p)?;
            let abs = std::path::absolute(p)
                .with_context(|| format!("cannot resolve {}", p.display()))?;
            Some((rc, abs))
        }
        None => None,
    };
    let ui = Ui::new(!a.json && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    runtime()?.block_on(async move {
        // Handlers first, so that Ctrl-C at any point stops up cleanly.
        let signal = Signals::install()?.wait();
        if a.command.is_empty() {
            in_process::run(a, external, ui, signal).await
        } else {
            with_command::run(a, external, ui, signal).await
        }
    })
}
