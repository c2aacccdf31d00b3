//! `xlreg serve`: run a registry until SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::cli::BadInput;
use xlreg::registry::StoreConfig;
use xlreg::server::{Server, ServerConfig, DEFAULT_DATA_DIR, DEFAULT_LISTEN};

/// Run an xlReg registry.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Address written into regCred.dat for clients (default: the listen
    /// address; 127.0.0.1 when listening on 0.0.0.0). Repeat it to list
    /// every server of a group sharing one `--store` database, in the same
    /// order on each server: xlreg clients try them in order and fail over
    /// (Go clients use the first).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Vec<String>,
    /// Keep the registry in this PostgreSQL database instead of SQLite in
    /// DATA_DIR, so several servers (each with a copy of one identity)
    /// serve it together: `postgres://USER:PASSWORD@HOST:PORT/DB`. The
    /// password is never printed.
    #[arg(long, value_name = "URL", env = "XLREG_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// Most PostgreSQL connections this server opens (with `--store`).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub store_connections: u32,
    /// Create the identity in DATA_DIR (if missing), print its ID and exit:
    /// the first step of a group of servers (copy DATA_DIR's identity files
    /// to every server).
    #[arg(long)]
    pub init_only: bool,
    /// Data directory: identity, keys, database, regCred.dat.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Registry name written into regCred.dat.
    #[arg(long, default_value = "xlReg")]
    pub name: String,
    /// RSA key size for a newly created identity (1024 is accepted with a
    /// warning; clients refuse registry keys above 4096 bits).
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1024..=4096))]
    pub key_bits: u32,
    /// Largest RSA modulus, in bits, accepted in a member's token: larger
    /// keys, and public exponents that are even or above 2^31-1, are refused
    /// before any signature check (the minimum is always 1024).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1024..=16384))]
    pub max_key_bits: u32,
    /// Refuse to start when the data directory or a private key file in it
    /// is accessible by group/others (default: warn).
    #[arg(long)]
    pub strict_perms: bool,
    /// Keep nothing on disk except regCred.dat (fresh identity, in-memory
    /// database).
    #[arg(long)]
    pub ephemeral: bool,
    /// Take over a Go xlReg's identity from its `.xlattice/reg.config`, so
    /// its clients keep their regCred.dat.
    #[arg(long, value_name = "REG_CONFIG")]
    pub adopt: Option<PathBuf>,
    /// Write regCred.dat here instead of DATA_DIR/regCred.dat.
    #[arg(long, value_name = "FILE")]
    pub regcred: Option<PathBuf>,
    /// Most concurrent connections (more wait in the backlog).
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Longest wait for a requested member before answering a GetCluster,
    /// in milliseconds (0: answer at once like the Go server).
    #[arg(long, default_value_t = 1000)]
    pub hold_ms: u64,
    /// Seconds a connection may stay idle between requests.
    #[arg(long, default_value_t = 60)]
    pub idle_timeout: u64,
    /// Refuse GetCluster from sessions that did not join a cluster.
    #[arg(long)]
    pub members_only: bool,
    /// Serve /metrics, /healthz, /readyz, the status page and the admin
    /// API on this address (off by default). Read-only pages are open on a
    /// loopback address and need the admin token otherwise.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Admin token file (default: DATA_DIR/admin.token, generated with
    /// mode 0600 on first use).
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Most connections the HTTP side door holds, separate from
    /// --max-connections. At the cap a new connection closes the oldest
    /// one with no request being handled; when all are busy it gets 503.
    #[arg(long, default_value_t = xlreg::http::DEFAULT_MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..=100_000), value_name = "N")]
    pub http_max_connections: u64,
    /// Seconds an HTTP client has to send a request's headers (counted
    /// from the connect or the end of the previous response).
    #[arg(long, default_value_t = xlreg::http::DEFAULT_HEADER_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600), value_name = "SECS")]
    pub http_header_timeout: u64,
    /// Seconds an HTTP connection with no request being handled may stay
    /// silent (no byte either way) before it is closed: the keep-alive
    /// limit, and the limit for a client that stops reading a response.
    #[arg(long, default_value_t = xlreg::http::DEFAULT_IDLE_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600), value_name = "SECS")]
    pub http_idle_timeout: u64,
    /// Seconds an HTTP request may take, its body included (then 408).
    #[arg(long, default_value_t = xlreg::http::DEFAULT_REQUEST_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600), value_name = "SECS")]
    pub http_request_timeout: u64,
    /// Largest HTTP request body read, in bytes (then 413).
    #[arg(long, default_value_t = xlreg::http::DEFAULT_MAX_BODY as u64,
          value_parser = clap::value_parser!(u64).range(1..=(64 << 20)), value_name = "BYTES")]
    pub http_max_body: u64,
    /// Lifetime of clusters whose creator set none, counted from their
    /// last Join or GetCluster: 90s, 30m, 2h, 7d or never.
    #[arg(long, default_value = "never", value_parser = crate::cli::parse_ttl, value_name = "TTL")]
    pub cluster_ttl: crate::cli::Ttl,
    /// Lifetime of clusters created with the Ephemeral attribute bit
    /// (and no TTL of their own). Default: 1h.
    #[arg(long, value_parser = crate::cli::parse_ttl, value_name = "TTL")]
    pub ephemeral_ttl: Option<crate::cli::Ttl>,
    /// Most clusters the registry holds; a Create beyond it gets an Error
    /// naming this limit.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_clusters: u64,
    /// Most Member registrations per source address per hour (a token
    /// bucket: bursts up to this many, then this many an hour).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_registrations_per_hour: u32,
}

/// Run the server until a signal arrives.
pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    for adv in &a.advertise {
        xlreg::wire::check_endpoint(adv).map_err(|e| BadInput(format!("--advertise: {e}")))?;
    }
    if a.key_bits < 2048 {
        eprintln!(
            "warning: --key-bits {} is weak for a registry; 2048 is the default",
            a.key_bits
        );
    }
    if a.init_only {
        return init_only(&a);
    }
    let store = match a.store.as_deref() {
        None | Some("") => None,
        Some(raw) => {
            if a.ephemeral {
                return Err(BadInput("--store and --ephemeral exclude each other".into()).into());
            }
            Some(StoreConfig::Postgres {
                url: Box::new(crate::cli::store::parse_store_url(raw)?),
                pool: xlreg::registry::postgres::PoolOptions {
                    max_connections: a.store_connections as usize,
                    ..Default::default()
                },
            })
        }
    };
    // Open files: raise the soft limit, then fit both ports' caps under it.
    let (nofile, _) = crate::cli::fdlimit::raise_nofile();
    let store_files = match &store {
        // The pool, the LISTEN connection and one being replaced.
        Some(_) => u64::from(a.store_connections) + 2,
        // SQLite: the database, its -wal and -shm, a journal.
        None => 4,
    };
    let budget = crate::cli::fdlimit::fit(
        nofile,
        a.max_connections as u64,
        if a.http.is_some() {
            a.http_max_connections
        } else {
            0
        },
        store_files,
    )
    .map_err(BadInput)?;
    if let Some(w) = &budget.lowered {
        eprintln!("warning: {w}");
    }
    let http_limits = xlreg::http::HttpLimits {
        max_connections: budget.http.max(1) as usize,
        header_timeout: Duration::from_secs(a.http_header_timeout),
        idle_timeout: Duration::from_secs(a.http_idle_timeout),
        request_timeout: Duration::from_secs(a.http_request_timeout),
        max_body: a.http_max_body as usize,
    };
    // The data directory is made in one place, mode 0700, before anything
    // (admin token, regCred.dat, identity) is written into it.
    let regcred_in_data_dir = a
        .regcred
        .as_ref()
        .is_none_or(|r| r.parent() == Some(a.data_dir.as_path()));
    let writes_data_dir =
        !a.ephemeral || regcred_in_data_dir || (a.http.is_some() && a.admin_token_file.is_none());
    if writes_data_dir {
        xlreg::server::prepare_data_dir(&a.data_dir)?;
    }
    let mut advertise = a.advertise.into_iter();
    let mut cfg = ServerConfig {
        listen: a.listen,
        advertise: advertise.next(),
        advertise_more: advertise.collect(),
        data_dir: Some(a.data_dir.clone()),
        store,
        regcred_path: a.regcred.clone(),
        name: a.name,
        key_bits: a.key_bits,
        max_key_bits: a.max_key_bits,
        strict_perms: a.strict_perms,
        adopt: a.adopt,
        max_connections: budget.protocol as usize,
        hold: Duration::from_millis(a.hold_ms),
        idle_timeout: Duration::from_secs(a.idle_timeout.max(1)),
        allow_anonymous_reads: !a.members_only,
        cluster_ttl: a.cluster_ttl.0,
        ephemeral_ttl: a
            .ephemeral_ttl
            .map_or(Some(Duration::from_secs(3600)), |t| t.0),
        max_clusters: Some(a.max_clusters as usize),
        max_registrations_per_hour: Some(a.max_registrations_per_hour),
        ..Default::default()
    };
    // The admin token lives beside regCred.dat (even for --ephemeral).
    let token = match (&a.http, &a.admin_token_file) {
        (None, _) => None,
        (Some(_), Some(f)) => Some(
            xlreg::http::AdminToken::from_file(f)
                .map_err(|e| BadInput(format!("--admin-token-file: {e}")))?,
        ),
        (Some(_), None) => Some(xlreg::http::AdminToken::load_or_create(&a.data_dir)?),
    };
    if a.ephemeral {
        cfg.data_dir = None;
        cfg.regcred_path = Some(a.regcred.unwrap_or_else(|| a.data_dir.join("regCred.dat")));
        // A regCred.dat outside the data dir goes where the operator said.
        if let Some(parent) = cfg.regcred_path.as_ref().and_then(|p| p.parent()) {
            if !regcred_in_data_dir && !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
        }
    }
    let rt = crate::cli::runtime()?;
    rt.block_on(async move {
        // Handlers first: a signal that arrives right after start-up must
        // still shut down cleanly.
        let signals = Signals::install()?;
        let server = Server::start(cfg).await?;
        // Announce where we are; a closed stdout must not stop the server.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", server.local_addr());
        if let Some(p) = server.regcred_path() {
            let _ = writeln!(out, "regCred: {}", p.display());
        }
        let http = match (a.http, token) {
            (Some(listen), Some(token)) => {
                let path = token.path().display().to_string();
                let h = xlreg::http::HttpServer::start_with_limits(
                    xlreg::http::HttpConfig { listen, token },
                    http_limits,
                    &server,
                )
                .await?;
                let _ = writeln!(out, "http on http://{}", h.local_addr());
                let _ = writeln!(out, "admin token: {path}");
                Some(h)
            }
            _ => None,
        };
        let _ = out.flush();
        drop(out);
        signals.wait().await;
        tracing::info!("signal received; shutting down");
        if let Some(h) = http {
            h.shutdown().await;
        }
        server.shutdown().await;
        Ok(())
    })
}

/// `--init-only`: make (or load) the identity in DATA_DIR and say so.
fn init_only(a: &ServeArgs) -> anyhow::Result<()> {
    if a.ephemeral {
        return Err(BadInput("--init-only needs a data dir, not --ephemeral".into()).into());
    }
    xlreg::server::prepare_data_dir(&a.data_dir)?;
    let (id, created) = xlreg::server::ServerIdentity::load_or_create(&a.data_dir, a.key_bits)?;
    println!(
        "{} registry identity {} in {}",
        if created { "created" } else { "kept the" },
        id.id,
        a.data_dir.display()
    );
    Ok(())
}

/// SIGINT and SIGTERM handlers, installed up front.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Install both handlers (inside a tokio runtime).
    pub fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?,
        })
    }

    /// Resolve on the first SIGINT or SIGTERM.
    pub async fn wait(mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}
