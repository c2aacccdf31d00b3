//! `xlreg bench ...`: measure this machine, so that results (cluster
//! formation time, registry throughput) can be read against the hardware.
//! Each benchmark is a variant of [`BenchCommand`].

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::bench;

/// Arguments of `xlreg bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// RSA key generation, Hello decryption, signing, verification and
    /// session sealing/opening: ops/s and µs/op.
    Crypto(CryptoArgs),
    /// Cluster formation: wall time until every member of a new cluster
    /// (8 and 64 members, keys made beforehand) holds the complete view.
    Formation(FormationArgs),
    /// Registry throughput: complete member sessions per second at 1, 8
    /// and 64 concurrent clients, against the RSA-decrypt bound.
    Throughput(ThroughputArgs),
    /// `xlreg up --size 64` end to end in a new process, cold and with a
    /// warm key pool, for 1024- and 2048-bit keys.
    Up(UpBenchArgs),
    /// Registry memory: peak RSS of a `serve` process holding 10 000
    /// clusters of 8 members, against the raw bytes of their tokens.
    Memory(MemoryArgs),
    /// Secure peer channel (`xlreg::peer`): handshake time and the
    /// throughput of one channel beside raw TCP, in the same run.
    Peer(PeerBenchArgs),
    /// The fault proxy of test clusters (`LaunchOptions { faults: true }`,
    /// `up --faults`): round trip and throughput through a healthy proxy
    /// beside a direct connection, in the same run.
    Faults(FaultsBenchArgs),
    /// The member commands as a user runs them: `xlreg create` (first and
    /// again) and `xlreg join --wait 0` against a default `xlreg serve`.
    Cli(CliArgs),
    /// A registry under steady load: clusters created, filled, read and
    /// expiring for `--minutes` (half with `--cluster-ttl`, half without);
    /// sessions/s, p50/p99 latency and server RSS over time.
    Soak(SoakArgs),
    /// Every registry benchmark above (not `peer`) with the settings the
    /// README and docs/ quote,
    /// one after the other (a few minutes); `--markdown` prints the tables
    /// the docs show, each under the command that reproduces it alone.
    All(AllArgs),
}

/// Arguments of `xlreg bench cli`.
#[derive(Args, Debug)]
pub struct CliArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `xlreg bench faults`.
#[derive(Args, Debug)]
pub struct FaultsBenchArgs {
    /// 1-byte round trips per path (each series also stops after 5 s).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    pub round_trips: u64,
    /// MiB per transfer.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub megabytes: u64,
    /// Transfers per path; the median is printed.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub rounds: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `xlreg bench all`.
#[derive(Args, Debug)]
pub struct AllArgs {
    /// Print Markdown: a heading per benchmark, its table in a code block.
    #[arg(long)]
    pub markdown: bool,
}

/// Arguments of `xlreg bench peer`.
#[derive(Args, Debug)]
pub struct PeerBenchArgs {
    /// Member key sizes.
    #[arg(long, value_delimiter = ',', default_value = "2048",
          value_parser = clap::value_parser!(u32).range(1024..=4096))]
    pub key_bits: Vec<u32>,
    /// Handshakes to time per key size (the row also stops after 5 s).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub handshakes: u64,
    /// MiB per transfer.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub megabytes: u64,
    /// Transfers per kind (channel, raw TCP); the median is printed.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub rounds: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `xlreg bench formation`.
#[derive(Args, Debug)]
pub struct FormationArgs {
    /// Measured runs per row (after one warm-up run; each row also stops
    /// after 10 s).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub runs: u64,
    /// Cluster sizes.
    #[arg(long, value_delimiter = ',', default_value = "8,64",
          value_parser = clap::value_parser!(u32).range(2..=64))]
    pub sizes: Vec<u32>,
    /// Member key sizes.
    #[arg(long, value_delimiter = ',', default_value = "1024,2048",
          value_parser = clap::value_parser!(u32).range(1024..=4096))]
    pub key_bits: Vec<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Compare stores instead: SQLite, then PostgreSQL with one and two
    /// servers, on scratch databases made on this server (its user must
    /// be allowed to CREATE DATABASE). Uses the first of --key-bits.
    #[arg(
        long,
        value_name = "postgres://…",
        env = "XLREG_BENCH_STORE",
        hide_env_values = true
    )]
    pub store: Option<String>,
}

/// Arguments of `xlreg bench throughput`.
#[derive(Args, Debug)]
pub struct ThroughputArgs {
    /// Seconds per concurrency level.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64",
          value_parser = clap::value_parser!(u64).range(1..=512))]
    pub clients: Vec<u64>,
    /// What each session's GetCluster asks for: `all` members (what a
    /// booting member does) or `one` (member 0, the smallest reply).
    #[arg(long, default_value = "all", value_parser = ["all", "one"])]
    pub get: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Compare stores instead: SQLite, then PostgreSQL with one and two
    /// servers (scratch databases on this server; GetCluster of member 0).
    #[arg(
        long,
        value_name = "postgres://…",
        env = "XLREG_BENCH_STORE",
        hide_env_values = true
    )]
    pub store: Option<String>,
}

/// Arguments of `xlreg bench up`.
#[derive(Args, Debug)]
pub struct UpBenchArgs {
    /// Runs per row (each row also stops after 30 s).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub runs: u64,
    /// Cluster size.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(2..=64))]
    pub size: u32,
    /// Member key sizes.
    #[arg(long, value_delimiter = ',', default_value = "1024,2048",
          value_parser = clap::value_parser!(u32).range(1024..=2048))]
    pub key_bits: Vec<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The `--cluster-ttl` values `xlreg bench soak --ttl` offers.
const SOAK_TTLS: [&str; 5] = ["10s", "30s", "60s", "2m", "5m"];

/// Arguments of `xlreg bench soak`.
#[derive(Args, Debug)]
pub struct SoakArgs {
    /// Minutes in all (two phases of half each: TTL on, TTL off).
    #[arg(long, default_value_t = 2.0)]
    pub minutes: f64,
    /// The server's `--cluster-ttl` in the TTL-on phase.
    #[arg(long, default_value = "30s", value_parser = SOAK_TTLS)]
    pub ttl: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub clients: u64,
    /// Members per cluster.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(2..=64))]
    pub members: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `xlreg bench memory`.
#[derive(Args, Debug)]
pub struct MemoryArgs {
    /// Clusters to fill (filling also stops after 600 s).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub clusters: u64,
    /// Members per cluster.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(2..=64))]
    pub members: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `xlreg bench crypto`.
#[derive(Args, Debug)]
pub struct CryptoArgs {
    /// Runs per operation (key generation stays capped at 20 for RSA-1024
    /// and 10 for RSA-2048; every row also stops after 3 s).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub iterations: Option<u64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct CryptoReport<'a> {
    benchmark: &'static str,
    rows: &'a [bench::crypto::Row],
}

/// Run `xlreg bench ...`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Crypto(a) => crypto(a),
        BenchCommand::Formation(a) if a.store.is_some() => {
            let url = a.store.as_deref().unwrap_or_default();
            crate::cli::store::parse_store_url(url)?;
            eprintln!("comparing stores: cluster formation (bounded: 8 s per row)...");
            let bits = a.key_bits.first().copied().unwrap_or(1024);
            let r = crate::cli::runtime()?.block_on(bench::stores::formation(
                url,
                &a.sizes,
                bits,
                a.runs as usize,
            ))?;
            emit(a.json, &r, bench::stores::formation_table)
        }
        BenchCommand::Throughput(a) if a.store.is_some() => {
            let url = a.store.as_deref().unwrap_or_default();
            crate::cli::store::parse_store_url(url)?;
            if !(a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 20.0) {
                return Err(crate::cli::BadInput(format!(
                    "--seconds {} must be in (0, 20] with --store",
                    a.seconds
                ))
                .into());
            }
            eprintln!(
                "comparing stores: throughput ({} s per level)...",
                a.seconds
            );
            let levels: Vec<usize> = a.clients.iter().map(|&c| c as usize).collect();
            let r = crate::cli::runtime()?
                .block_on(bench::stores::throughput(url, &levels, a.seconds))?;
            emit(a.json, &r, bench::stores::throughput_table)
        }
        BenchCommand::Formation(a) => {
            eprintln!("measuring cluster formation (bounded: 10 s per row)...");
            let runs = a.runs as usize;
            let r = crate::cli::runtime()?.block_on(bench::formation::run(
                &a.sizes,
                &a.key_bits,
                runs,
            ))?;
            emit(a.json, &r, bench::formation::table)
        }
        BenchCommand::Throughput(a) => {
            if !(a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 600.0) {
                return Err(crate::cli::BadInput(format!(
                    "--seconds {} must be in (0, 600]",
                    a.seconds
                ))
                .into());
            }
            eprintln!(
                "measuring registry throughput ({} s per level)...",
                a.seconds
            );
            let levels: Vec<usize> = a.clients.iter().map(|&c| c as usize).collect();
            let r = crate::cli::runtime()?.block_on(bench::throughput::run(
                &levels,
                a.seconds,
                a.get == "all",
            ))?;
            emit(a.json, &r, bench::throughput::table)
        }
        BenchCommand::Up(a) => {
            eprintln!(
                "measuring `xlreg up --size {}` (bounded: 30 s per row)...",
                a.size
            );
            let r = bench::up::run(a.size, &a.key_bits, a.runs as usize)?;
            emit(a.json, &r, bench::up::table)
        }
        BenchCommand::All(a) => all(a),
        BenchCommand::Cli(a) => {
            eprintln!("measuring xlreg create and join --wait 0...");
            let r = bench::cli_calls::run()?;
            emit(a.json, &r, bench::cli_calls::table)
        }
        BenchCommand::Memory(a) => {
            eprintln!(
                "filling a registry with {} clusters of {} members (bounded: 600 s)...",
                a.clusters, a.members
            );
            let r = crate::cli::runtime()?
                .block_on(bench::memory::run(a.clusters as usize, a.members as usize))?;
            emit(a.json, &r, bench::memory::table)
        }
        BenchCommand::Soak(a) => {
            if !(a.minutes.is_finite() && a.minutes > 0.0 && a.minutes <= 120.0) {
                return Err(crate::cli::BadInput(format!(
                    "--minutes {} must be in (0, 120]",
                    a.minutes
                ))
                .into());
            }
            let ttl = SOAK_TTLS.into_iter().find(|t| *t == a.ttl).unwrap_or("30s");
            eprintln!(
                "soak: {} min, {} clients, clusters of {} (bounded: {} clusters a phase)...",
                a.minutes,
                a.clients,
                a.members,
                bench::soak::MAX_CLUSTERS
            );
            let r = crate::cli::runtime()?.block_on(bench::soak::run(
                a.minutes,
                ttl,
                a.clients as usize,
                a.members as usize,
            ))?;
            emit(a.json, &r, bench::soak::table)
        }
        BenchCommand::Faults(a) => {
            eprintln!(
                "measuring the fault proxy (bounded: 5 s per latency series, 30 s per transfer)..."
            );
            let r = crate::cli::runtime()?.block_on(bench::faults::run(
                a.round_trips as usize,
                a.megabytes as usize,
                a.rounds as usize,
            ))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                r.print();
            }
            Ok(())
        }
        BenchCommand::Peer(a) => {
            eprintln!("measuring the secure peer channel (bounded: 5 s of handshakes, 30 s per transfer)...");
            let r = crate::cli::runtime()?.block_on(bench::peer::run(
                &a.key_bits,
                a.handshakes as usize,
                a.megabytes as usize,
                a.rounds as usize,
            ))?;
            emit(a.json, &r, bench::peer::table)
        }
    }
}

fn emit<R: Serialize>(json: bool, r: &R, table: fn(&R) -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        print!("{}", table(r));
    }
    Ok(())
}

fn crypto(a: CryptoArgs) -> anyhow::Result<()> {
    let iterations = a
        .iterations
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if !a.json {
        eprintln!("measuring (bounded: at most 3 s per row)...");
    }
    let rows = bench::crypto::run(iterations)?;
    if a.json {
        let report = CryptoReport {
            benchmark: "crypto",
            rows: &rows,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", bench::crypto::table(&rows));
    }
    Ok(())
}

/// The settings `bench all` uses, as the command lines that reproduce each
/// table alone (the docs quote these).
pub const ALL_COMMANDS: [&str; 6] = [
    "xlreg bench crypto",
    "xlreg bench formation --runs 3",
    "xlreg bench throughput --seconds 2 --clients 1,8,64",
    "xlreg bench up --runs 1 --key-bits 2048",
    "xlreg bench memory --clusters 1000",
    "xlreg bench cli",
];

fn all(a: AllArgs) -> anyhow::Result<()> {
    let rt = crate::cli::runtime()?;
    let section = |cmd: &str, table: String| {
        if a.markdown {
            println!("### `{cmd}`\n\n```text\n{}```\n", table);
        } else {
            println!("== {cmd}\n{table}");
        }
    };
    eprintln!("bench all: crypto...");
    section(
        ALL_COMMANDS[0],
        bench::crypto::table(&bench::crypto::run(None)?),
    );
    eprintln!("bench all: formation...");
    let r = rt.block_on(bench::formation::run(&[8, 64], &[1024, 2048], 3))?;
    section(ALL_COMMANDS[1], bench::formation::table(&r));
    eprintln!("bench all: throughput...");
    let r = rt.block_on(bench::throughput::run(&[1, 8, 64], 2.0, true))?;
    section(ALL_COMMANDS[2], bench::throughput::table(&r));
    eprintln!("bench all: up...");
    let r = bench::up::run(64, &[2048], 1)?;
    section(ALL_COMMANDS[3], bench::up::table(&r));
    eprintln!("bench all: memory...");
    let r = rt.block_on(bench::memory::run(1000, 8))?;
    section(ALL_COMMANDS[4], bench::memory::table(&r));
    eprintln!("bench all: cli...");
    section(
        ALL_COMMANDS[5],
        bench::cli_calls::table(&bench::cli_calls::run()?),
    );
    Ok(())
}
