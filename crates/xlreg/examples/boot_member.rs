//! A member that boots through the client library and prints its peers.
//!
//! ```text
//! cargo run --example boot_member -- REGCRED CLUSTER [NODE_DIR] [ENDPOINT...]
//! ```
//!
//! Or with the environment: `XLREG_REGCRED`, `XLREG_CLUSTER` (a cluster
//! name, or its ID as 40/64 hex digits), `XLREG_NODE_DIR` (optional; where
//! the identity is kept so that a restarted member keeps its ID),
//! `XLREG_ENDPOINT` (optional, default `127.0.0.1:7000`; give where the member
//! really listens) and
//! `XLREG_WAIT` (seconds, default 30).
//!
//! Try it against a local registry:
//!
//! ```text
//! xlreg serve --data-dir /tmp/reg &            # writes /tmp/reg/regCred.dat
//! xlreg create --regcred /tmp/reg/regCred.dat demo --size 2
//! cargo run --example boot_member -- /tmp/reg/regCred.dat demo /tmp/m1 127.0.0.1:7001 &
//! cargo run --example boot_member -- /tmp/reg/regCred.dat demo /tmp/m2 127.0.0.1:7002
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use xlreg::client::{blocking, BootOptions, ClusterRef};
use xlreg::client::{NodeIdentity, NodeOptions};
use xlreg::regcred::RegCred;

fn arg_or_env(args: &[String], i: usize, var: &str) -> Option<String> {
    args.get(i).cloned().or_else(|| std::env::var(var).ok())
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: boot_member REGCRED CLUSTER [NODE_DIR] [ENDPOINT...] \
                 (or XLREG_REGCRED, XLREG_CLUSTER, XLREG_NODE_DIR, XLREG_ENDPOINT)";
    let regcred = arg_or_env(&args, 0, "XLREG_REGCRED").ok_or(usage)?;
    let cluster: ClusterRef = arg_or_env(&args, 1, "XLREG_CLUSTER")
        .ok_or(usage)?
        .parse()
        .map_err(|e| format!("{e:?}"))?;
    let node_dir = arg_or_env(&args, 2, "XLREG_NODE_DIR").map(PathBuf::from);
    let mut endpoints: Vec<String> = args.iter().skip(3).cloned().collect();
    if endpoints.is_empty() {
        endpoints.push(std::env::var("XLREG_ENDPOINT").unwrap_or_else(|_| "127.0.0.1:7000".into()));
    }
    let wait: f64 = std::env::var("XLREG_WAIT")
        .ok()
        .map(|w| {
            w.parse()
                .map_err(|_| format!("XLREG_WAIT={w:?} is not a number"))
        })
        .transpose()?
        .unwrap_or(30.0);

    let rc = RegCred::load(&regcred).map_err(|e| xlreg::ErrorChain(&e).to_string())?;
    let opts = NodeOptions {
        endpoints: Some(endpoints),
        ..NodeOptions::default()
    };
    let node = match &node_dir {
        Some(dir) => NodeIdentity::load_or_create(dir, &opts).map(|(n, _)| n),
        None => NodeIdentity::generate(&opts),
    }
    .map_err(|e| xlreg::ErrorChain(&e).to_string())?;

    let boot = BootOptions {
        wait: (wait > 0.0).then(|| Duration::from_secs_f64(wait)),
        ..BootOptions::default()
    };
    let view = blocking::boot(&rc, &cluster, &node, &boot)
        .map_err(|e| xlreg::ErrorChain(&e).to_string())?;

    println!(
        "I am {} (#{} of {}, ID {}) in cluster {}",
        node.name, view.self_index, view.max_size, node.id, view.cluster_id
    );
    for p in view.peers() {
        println!(
            "  peer #{:<2} {:<24} {}  {}",
            p.index,
            p.name,
            p.id,
            p.endpoints.join(", ")
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("boot_member: {e}");
            ExitCode::FAILURE
        }
    }
}
