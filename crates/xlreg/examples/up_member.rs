//! A member program for `xlreg up -- CMD`: it joins the cluster `up`
//! created, prints its view as one JSON line, answers connections on its
//! endpoints with its name, and runs until SIGTERM or SIGINT — or, with
//! `--once`, exits right after joining. With `--probe` it also connects to
//! every peer's first endpoint every 200 ms and prints a JSON line
//! `{"from":I,"to":J,"reach":true|false}` whenever a peer starts or stops
//! answering (within 500 ms) — what `xlreg up --faults` tests watch.
//!
//! ```text
//! cargo build --example up_member
//! cargo run -- up --size 3 -- target/debug/examples/up_member
//! ```
//!
//! Everything it needs comes from the environment `up` sets (see
//! `xlreg::client::up_env::env`); the join itself is one call, [`UpEnv::boot`].

use std::process::ExitCode;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use xlreg::client::BootOptions;
use xlreg::client::UpEnv;

#[tokio::main]
async fn main() -> ExitCode {
    let once = std::env::args().any(|a| a == "--once");
    let probe = std::env::args().any(|a| a == "--probe");
    match run(once, probe).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("up_member: {}", xlreg::ErrorChain(&*e));
            ExitCode::FAILURE
        }
    }
}

async fn run(once: bool, probe: bool) -> Result<(), Box<dyn std::error::Error>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let env = UpEnv::from_env()?;
    // Open the endpoints before joining, as Go members do, so that peers
    // that learn them can connect at once.
    // Under `xlreg up --listen-fds` they are already bound and listening.
    let mut listeners = Vec::new();
    if let Some(passed) = UpEnv::take_listeners()? {
        for l in passed {
            l.set_nonblocking(true)?;
            listeners.push(TcpListener::from_std(l)?);
        }
    } else {
        for e in &env.endpoints {
            listeners.push(
                TcpListener::bind(e)
                    .await
                    .map_err(|err| format!("cannot listen on {e}: {err}"))?,
            );
        }
    }
    let (node, view) = env.boot(&BootOptions::default()).await?;
    let line = serde_json::json!({
        "pid": std::process::id(),
        "member": node.name,
        "slot": view.self_index,
        "id": node.id.to_hex(),
        "view": view.to_json(),
    });
    println!("{line}");
    if once {
        return Ok(());
    }
    let greeting = format!(
        "{} (slot {}) of cluster {} {}\n",
        node.name,
        view.self_index,
        view.cluster_name.as_deref().unwrap_or("-"),
        view.cluster_id
    );
    for l in listeners {
        let g = greeting.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(g.as_bytes()).await;
            }
        });
    }
    if probe {
        for m in view.members.iter().filter(|m| m.index != view.self_index) {
            let (me, to) = (view.self_index, m.index);
            let Some(ep) = m.endpoints.first().cloned() else {
                continue;
            };
            tokio::spawn(async move {
                let mut last = None;
                loop {
                    let ok = tokio::time::timeout(std::time::Duration::from_millis(500), async {
                        let s = tokio::net::TcpStream::connect(&ep).await?;
                        let mut line = String::new();
                        tokio::io::AsyncBufReadExt::read_line(
                            &mut tokio::io::BufReader::new(s),
                            &mut line,
                        )
                        .await?;
                        Ok::<bool, std::io::Error>(!line.is_empty())
                    })
                    .await
                    .is_ok_and(|r| r.unwrap_or(false));
                    if last != Some(ok) {
                        println!("{}", serde_json::json!({"from": me, "to": to, "reach": ok}));
                        last = Some(ok);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            });
        }
    }
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
