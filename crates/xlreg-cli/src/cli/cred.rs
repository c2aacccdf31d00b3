//! `xlreg cred`: inspect registry credential files (regCred.dat).
//!
//! A regCred.dat is the only thing a client trusts, and it is handed around
//! out of band, so operators need a quick way to see which registry (ID,
//! key fingerprints, address) a file points at, and a precise error (file
//! and line) when a copy got mangled on the way.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cli::BadInput;
use xlreg::regcred::{RegCred, RegCredFileError};

/// Arguments of `xlreg cred`.
#[derive(Args, Debug)]
pub struct CredArgs {
    #[command(subcommand)]
    command: CredCommand,
}

#[derive(Subcommand, Debug)]
enum CredCommand {
    /// Show what a regCred.dat contains: name, ID, key sizes and SHA-256
    /// fingerprints of the SPKI DER, endpoints, version.
    Show {
        /// The regCred.dat file.
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// The JSON form of `xlreg cred show --json`.
#[derive(Serialize, Debug)]
pub struct CredSummary {
    /// Registry name.
    pub name: String,
    /// Registry ID, lowercase hex.
    pub id: String,
    /// Comms key modulus size in bits.
    pub comms_key_bits: u32,
    /// Sig key modulus size in bits.
    pub sig_key_bits: u32,
    /// SHA-256 of the comms key's SPKI DER, lowercase hex.
    pub comms_key_sha256: String,
    /// SHA-256 of the sig key's SPKI DER, lowercase hex.
    pub sig_key_sha256: String,
    /// Endpoints, `host:port`.
    pub endpoints: Vec<String>,
    /// Version string.
    pub version: String,
}

impl From<&RegCred> for CredSummary {
    fn from(rc: &RegCred) -> Self {
        CredSummary {
            name: rc.name.clone(),
            id: rc.id.to_hex(),
            comms_key_bits: rc.comms_key.bits(),
            sig_key_bits: rc.sig_key.bits(),
            comms_key_sha256: rc.comms_key.fingerprint(),
            sig_key_sha256: rc.sig_key.fingerprint(),
            endpoints: rc.endpoints.clone(),
            version: rc.version.to_string(),
        }
    }
}

/// Run `xlreg cred ...`.
pub fn run(args: CredArgs) -> anyhow::Result<()> {
    match args.command {
        CredCommand::Show { file, json } => show(&file, json),
    }
}

/// Load a regCred file; any failure to read or parse it is bad input
/// (exit code 2), reported with the file name and line.
pub fn load_cred(file: &std::path::Path) -> anyhow::Result<RegCred> {
    RegCred::load(file).map_err(|e: RegCredFileError| {
        anyhow::Error::new(BadInput(xlreg::ErrorChain(&e).to_string()))
    })
}

fn show(file: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let rc = load_cred(file)?;
    let s = CredSummary::from(&rc);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).context("encoding JSON")?
        );
        return Ok(());
    }
    println!("file:        {}", file.display());
    println!("name:        {}", s.name);
    println!("id:          {} ({} bytes)", s.id, rc.id.as_bytes().len());
    println!(
        "comms key:   RSA-{} sha256 {}",
        s.comms_key_bits, s.comms_key_sha256
    );
    println!(
        "sig key:     RSA-{} sha256 {}",
        s.sig_key_bits, s.sig_key_sha256
    );
    if s.endpoints.is_empty() {
        println!("endpoints:   (none: clients have nowhere to connect)");
    }
    for (i, ep) in s.endpoints.iter().enumerate() {
        let role = if i == 0 {
            "  (clients connect here)"
        } else {
            ""
        };
        println!("endpoint {i}:  {ep}{role}");
    }
    println!("version:     {}", s.version);
    Ok(())
}
