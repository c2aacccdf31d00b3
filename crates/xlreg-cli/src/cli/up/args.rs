//! The flags of `xlreg up` and what they turn into.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use xlreg::client::BootOptions;
use xlreg::testing::{self, KeyGen};

/// Arguments of `xlreg up`.
#[derive(Args, Debug)]
#[command(after_help = "\
Without -- CMD, the members run in this process; up prints the cluster and
exits (or with --keep serves until Ctrl-C). With -- CMD ARGS..., up starts
one copy of CMD per member, each with its identity prepared in a node
directory and these variables set:

  XLREG_REGCRED         the registry's regCred.dat
  XLREG_CLUSTER_NAME    XLREG_CLUSTER_ID (40 hex)    XLREG_CLUSTER_SIZE
  XLREG_MEMBER_NAME     XLREG_MEMBER_INDEX (0..N, the slot)
  XLREG_ENDPOINTS       free 127.0.0.1 ports to listen on, comma-separated
  XLREG_NODE_DIR        the member's identity (node.json, two keys)

A Rust program joins with xlreg::client::UpEnv::from_env()?.boot(..); any
program can run `xlreg join --node-dir \"$XLREG_NODE_DIR\" --cluster-id
\"$XLREG_CLUSTER_ID\"`. up waits until all have joined, prints the cluster,
and stays until Ctrl-C or until every copy has exited; then it sends each
copy's process group SIGTERM (SIGKILL 5 s later). Their output appears on
stderr prefixed with the member name.

While it runs, `xlreg fault --cluster NAME ACTION` changes the cluster:
`replace I` (kill member I's program, evict it, start a new program with a
new node in slot I), `evict I`, `resize N` (growing starts programs for the
new slots), `kill I`, `restart I`, `status`; network faults need --faults.
The programs learn of a change by their own watch (`xlreg members --watch`).")]
pub struct UpArgs {
    /// Number of members, 2..=64.
    #[arg(long, short = 'n', value_name = "N")]
    pub size: u32,
    /// Endpoints per member (the cluster's EndPointCount), 1..=16: real
    /// free ports on 127.0.0.1.
    #[arg(long, value_name = "K", default_value_t = testing::DEFAULT_ENDPOINTS)]
    pub endpoints: u32,
    /// RSA key size of the members' keys.
    #[arg(long, value_name = "BITS", default_value_t = 2048,
          value_parser = parse_key_bits)]
    pub key_bits: u32,
    /// Use the registry of this regCred.dat (an xlreg or a Go one) instead
    /// of starting one in this process.
    #[arg(long, value_name = "FILE")]
    pub regcred: Option<PathBuf>,
    /// Cluster name (default `up-<8 random hex digits>`).
    #[arg(long)]
    pub name: Option<String>,
    /// Print the cluster view as JSON, with "timings" and "regcred" added.
    #[arg(long)]
    pub json: bool,
    /// Keep the members and the registry running until Ctrl-C (in-process
    /// members; with `-- CMD` up always stays).
    #[arg(long)]
    pub keep: bool,
    /// Take member keys from this directory of pre-generated test keys,
    /// adding any missing: repeated runs skip key generation. Keys are
    /// distinct within a cluster but reused by every run.
    #[arg(long, value_name = "DIR", env = "XLREG_KEY_POOL")]
    pub key_pool: Option<PathBuf>,
    /// Generate ordinary two-prime keys (about 3x slower for 2048 bits)
    /// instead of OpenSSL three-prime test keys.
    #[arg(long)]
    pub strict_keygen: bool,
    /// Cluster lifetime after its last Join or GetCluster (90s, 30m, 2h,
    /// 7d or never). Default: never with the embedded registry; 1h with
    /// --regcred (a shared registry), where up also deletes the cluster
    /// when it stops (unless --keep), so test clusters do not pile up.
    #[arg(long, value_name = "TTL", value_parser = crate::cli::parse_ttl)]
    pub ttl: Option<crate::cli::Ttl>,
    /// Seconds to wait for all members to join.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub wait: f64,
    /// With CMD: hand each program its endpoint sockets already bound and
    /// listening, as descriptors 3, 4, … (systemd socket activation:
    /// LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES), so that no other process
    /// can take a port first. The program must use them
    /// (UpEnv::take_listeners); binding its endpoint itself would fail with
    /// "address in use".
    #[arg(long)]
    pub listen_fds: bool,
    /// With CMD: put a fault proxy between every two members, so that
    /// `xlreg fault --cluster NAME ACTION` can also break the network
    /// (partition, cut, delay, drop, heal). Each program dials its peers
    /// through its proxies (UpEnv::boot puts them into the view, from
    /// XLREG_PEER_ENDPOINTS). up prints each fault with a timestamp.
    /// `resize` is refused then (the proxies are placed at start);
    /// `replace` works (the slot keeps its ports).
    #[arg(long)]
    pub faults: bool,
    /// With --faults: a schedule that alternates a random fault and a heal
    /// (partition-halves or isolate-one), every --every, chosen from
    /// --seed alone, so a run is replayed with its seed.
    #[arg(long, value_name = "KIND", requires = "faults")]
    pub nemesis: Option<xlreg::testing::faults::NemesisKind>,
    /// The nemesis' period (e.g. 500ms, 5s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_every)]
    pub every: Duration,
    /// The nemesis' seed (default: random, printed).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Launch this program once per member instead of in-process members
    /// (after `--`, with its arguments).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub(super) fn parse_key_bits(s: &str) -> Result<u32, String> {
    match s {
        "1024" => Ok(1024),
        "2048" => Ok(2048),
        _ => Err("1024 or 2048".into()),
    }
}

/// `500ms`, `5s`, `2m`: 10 ms to 1 day.
pub(super) fn parse_every(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration such as 500ms, 5s or 2m");
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad()),
    };
    if d < Duration::from_millis(10) || d > Duration::from_secs(86_400) {
        return Err(format!("{s:?}: between 10ms and 1 day"));
    }
    Ok(d)
}

pub(super) fn key_gen(a: &UpArgs) -> KeyGen {
    if a.strict_keygen {
        KeyGen::OpenSsl
    } else {
        KeyGen::Fast
    }
}

pub(super) fn boot_options(a: &UpArgs) -> BootOptions {
    BootOptions {
        wait: Some(Duration::from_secs_f64(a.wait)),
        ..BootOptions::default()
    }
}
