//! The `xlreg` command line: one file per command group, each a thin layer
//! over the library. Errors go to stderr as one line; exit code 2 means bad
//! input (a file, flag or argument), 1 any other failure.

pub mod serve;

use clap::{Parser, Subcommand};

pub mod admin;
#[cfg(feature = "bench")]
pub mod bench;
pub mod change;
pub mod cred;
pub mod fault;
pub mod fdlimit;
pub mod member;
pub mod peer;
pub mod store;
pub mod up;

/// xlReg cluster registry: run a registry, register members, create and join
/// clusters, launch test clusters in seconds.
#[derive(Parser, Debug)]
#[command(name = "xlreg", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `xlreg=debug`.
    /// Also read from XLREG_LOG.
    #[arg(long, global = true, env = "XLREG_LOG", default_value = "info")]
    pub log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a registry (drop-in for the Go xlReg server).
    Serve(serve::ServeArgs),
    /// Inspect registry credential files (regCred.dat).
    Cred(cred::CredArgs),
    /// Register a member with the registry and print its node ID.
    Register(member::RegisterArgs),
    /// Create a cluster (or look up an existing one) and print its ID.
    Create(member::CreateArgs),
    /// Boot a member: register, join a cluster, wait for every member,
    /// print the cluster.
    Join(member::JoinArgs),
    /// List a cluster's members without joining it (xlreg registries only);
    /// `--watch` prints each change as it happens.
    Members(member::MembersArgs),
    /// Change a cluster's size as its creator (xlreg registries only).
    Resize(change::ResizeArgs),
    /// Remove a member from its slot as the cluster's creator (xlreg
    /// registries only).
    Evict(change::EvictArgs),
    /// Leave a cluster: this member's slot becomes free (xlreg registries
    /// only).
    Leave(change::LeaveArgs),
    /// Launch a new test cluster: a registry (embedded unless --regcred)
    /// and N members, in-process or as N copies of a program (`-- CMD`).
    Up(up::UpArgs),
    /// Measure this machine (crypto costs, ...).
    #[cfg(feature = "bench")]
    Bench(bench::BenchArgs),
    /// Registry storage tools (copy a SQLite registry into PostgreSQL).
    Store(store::StoreArgs),
    /// Operate a registry through its HTTP side door (`serve --http`):
    /// list, show, delete clusters, stats.
    Admin(admin::AdminArgs),
    /// Break a running `xlreg up --faults` cluster on purpose (partition,
    /// cut, delay, heal, pause, resume, kill, restart members), or change
    /// any `xlreg up -- CMD` cluster: replace a member, evict, resize.
    Fault(fault::FaultArgs),
    /// Talk to other members over mutually authenticated TLS 1.3, pinned
    /// to the keys they registered (`peer ring` under `xlreg up -- CMD`).
    Peer(peer::PeerArgs),
}

/// Bad user input (a file, a flag, an argument): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Parse the command line (the first argument is the program name), run,
/// and map errors to an exit code. The binary and embedders such as the
/// Python package's `xlreg` command call this. It never exits the
/// process: bad arguments print clap's message and return 2 (0 for
/// `--help` and `--version`).
pub fn main_with<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    // `up` and `bench` embed a registry whose per-session info lines
    // would bury the table (and cost time): unless a level was chosen,
    // they log warnings only.
    let quiet = is_up_or_bench(&cli.command)
        && cli.log == "info"
        && std::env::var_os("XLREG_LOG").is_none();
    init_logging(if quiet { "warn" } else { &cli.log });
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("xlreg: error: {}", one_line(&e));
            if e.downcast_ref::<BadInput>().is_some() {
                2
            } else {
                1
            }
        }
    }
}

/// An error and its causes on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// `up` and `bench` (when built) log warnings only unless asked.
fn is_up_or_bench(command: &Command) -> bool {
    match command {
        Command::Up(_) => true,
        #[cfg(feature = "bench")]
        Command::Bench(_) => true,
        _ => false,
    }
}

fn init_logging(filter: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never into log files.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// A cluster lifetime flag: a duration, or `never` (`None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttl(pub Option<std::time::Duration>);

/// Parse a duration such as `90s`, `30m`, `2h`, `7d` (a bare number is
/// seconds), or `never`.
pub fn parse_ttl(s: &str) -> Result<Ttl, String> {
    let s = s.trim();
    if s == "never" {
        return Ok(Ttl(None));
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 90s, 30m, 2h, 7d or never"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use s, m, h or d)")),
    };
    if n == 0 {
        return Err(format!("{s:?}: a TTL must be positive (or never)"));
    }
    n.checked_mul(secs)
        .filter(|&t| t <= 10 * 365 * 86_400)
        .map(|t| Ttl(Some(std::time::Duration::from_secs(t))))
        .ok_or_else(|| format!("{s:?}: longer than 10 years"))
}

/// A multi-threaded tokio runtime for the async commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Cred(a) => cred::run(a),
        Command::Register(a) => member::run_register(a),
        Command::Create(a) => member::run_create(a),
        Command::Join(a) => member::run_join(a),
        Command::Members(a) => member::run_members(a),
        Command::Resize(a) => change::run_resize(a),
        Command::Evict(a) => change::run_evict(a),
        Command::Leave(a) => change::run_leave(a),
        Command::Up(a) => up::run(a),
        #[cfg(feature = "bench")]
        Command::Bench(a) => bench::run(a),
        Command::Store(a) => store::run(a),
        Command::Admin(a) => admin::run(a),
        Command::Peer(a) => peer::run(a),
        Command::Fault(a) => fault::run(a),
    }
}
