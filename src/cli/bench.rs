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
    }
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
