//! `xlreg peer ring | send | listen`: members talking to each other over
//! mutually authenticated TLS 1.3 ([`xlreg::peer`]), from a shell.
//!
//! `ring` is the one-command demonstration: run as every member by
//! `xlreg up --size N -- xlreg peer ring`, each member sends a message to
//! the next one (index + 1 mod N) and waits for the one from its
//! predecessor. `send` and `listen` are the same two halves for one-off
//! use with an explicit regcred, cluster and node directory.
//!
//! On the channel, a message is a 4-byte big-endian length and the bytes;
//! the receiver answers one byte, `K`, once it has it all.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::cli::member::{client_err, ClusterArgs, ConnArgs, NodeArgs};
use crate::cli::{runtime, BadInput};
use xlreg::client::{
    boot, ephemeral_identity, read_cluster, BootOptions, ClusterView, NodeIdentity, NodeOptions,
};
use xlreg::peer::{PeerConnector, PeerListener, PeerStream};
use xlreg::testing::UpEnv;

/// Largest message `listen` and `ring` accept.
pub const MAX_MESSAGE: usize = 1 << 20;

/// The receiver's answer once a message arrived whole.
const RECEIVED: u8 = b'K';

/// Arguments of `xlreg peer`.
#[derive(Args, Debug)]
pub struct PeerArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PeerCommand,
}

/// The `peer` subcommands.
#[derive(Subcommand, Debug)]
pub enum PeerCommand {
    /// Under `xlreg up --size N -- xlreg peer ring`: listen on this
    /// member's first endpoint, send a message to the next member
    /// (index + 1 mod N), wait for the one from the previous member, print
    /// it; exit 0 only if it arrived and was authenticated.
    Ring(RingArgs),
    /// Boot (or re-join) as a member and send one message to another
    /// member over the secure channel.
    Send(SendArgs),
    /// Boot (or re-join) as a member, listen on one of its endpoints and
    /// print the messages members send.
    Listen(ListenArgs),
}

/// Arguments of `xlreg peer ring`.
#[derive(Args, Debug)]
pub struct RingArgs {
    /// The message (default: `hello from <name> (member <index>)`).
    #[arg(long)]
    pub message: Option<String>,
    /// Seconds for the whole ring (joining, sending, receiving).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub timeout: f64,
}

/// How to join, for `send` and `listen`.
#[derive(Args, Debug)]
pub struct JoinAs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    node: NodeArgs,
    /// Seconds to wait for every member to join.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    wait: f64,
}

/// Arguments of `xlreg peer send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    join: JoinAs,
    /// Index of the member to send to.
    #[arg(
        long,
        value_name = "INDEX",
        required_unless_present = "to_name",
        conflicts_with = "to_name"
    )]
    to: Option<usize>,
    /// Name of the member to send to.
    #[arg(long, value_name = "NAME")]
    to_name: Option<String>,
    /// Which of its endpoints to dial.
    #[arg(long, value_name = "K", default_value_t = 0)]
    endpoint_index: usize,
    /// The message; without it, standard input (at most 1 MiB).
    #[arg(long)]
    message: Option<String>,
    /// Send as a client that is not a member: read the members without
    /// joining (an xlreg registry) and present no certificate. The member
    /// must listen with `--anonymous`; it still proves who it is.
    #[arg(long)]
    anonymous: bool,
}

/// Arguments of `xlreg peer listen`.
#[derive(Args, Debug)]
pub struct ListenArgs {
    #[command(flatten)]
    join: JoinAs,
    /// Which of this member's endpoints to listen on.
    #[arg(long, value_name = "K", default_value_t = 0)]
    endpoint_index: usize,
    /// Exit after this many messages.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Also accept clients that are not members (no certificate).
    #[arg(long)]
    anonymous: bool,
    /// Give up after this many seconds of listening.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    listen_for: f64,
}

fn seconds(flag: &str, s: f64) -> anyhow::Result<Duration> {
    if !(s.is_finite() && s > 0.0 && s <= 86_400.0) {
        bail!(BadInput(format!(
            "{flag} {s} must be in (0, 86400] seconds"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

/// Run `xlreg peer ...`.
pub fn run(a: PeerArgs) -> anyhow::Result<()> {
    match a.command {
        PeerCommand::Ring(a) => ring(a),
        PeerCommand::Send(a) => send(a),
        PeerCommand::Listen(a) => listen(a),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Send one message and wait for the receiver's `K`.
pub async fn send_message(s: &mut PeerStream, msg: &[u8]) -> anyhow::Result<()> {
    let who = s.peer().to_string();
    if msg.len() > MAX_MESSAGE {
        bail!(BadInput(format!(
            "the message is {} bytes; at most {MAX_MESSAGE}",
            msg.len()
        )));
    }
    s.write_all(&(msg.len() as u32).to_be_bytes())
        .await
        .with_context(|| format!("sending to {who}"))?;
    s.write_all(msg)
        .await
        .with_context(|| format!("sending to {who}"))?;
    s.flush()
        .await
        .with_context(|| format!("sending to {who}"))?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)
        .await
        .with_context(|| format!("waiting for {who} to confirm the message"))?;
    if b[0] != RECEIVED {
        bail!(
            "{who} answered {:#04x} instead of confirming the message",
            b[0]
        );
    }
    Ok(())
}

/// Receive one message (at most [`MAX_MESSAGE`] bytes) and confirm it.
pub async fn recv_message(s: &mut PeerStream) -> anyhow::Result<Vec<u8>> {
    let who = s.peer().to_string();
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .await
        .with_context(|| format!("reading a message from {who}"))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE {
        bail!("{who} announced a message of {len} bytes; at most {MAX_MESSAGE} are accepted");
    }
    let mut msg = vec![0u8; len];
    s.read_exact(&mut msg)
        .await
        .with_context(|| format!("reading a message of {len} bytes from {who}"))?;
    s.write_all(&[RECEIVED])
        .await
        .with_context(|| format!("confirming the message of {who}"))?;
    s.flush()
        .await
        .with_context(|| format!("confirming the message of {who}"))?;
    Ok(msg)
}

fn member_label(view: &ClusterView, index: usize) -> String {
    match view.member(index) {
        Some(m) => format!("member {index} ({})", m.name),
        None => format!("member {index}"),
    }
}

fn ring(a: RingArgs) -> anyhow::Result<()> {
    let limit = seconds("--timeout", a.timeout)?;
    let env = UpEnv::from_env().map_err(|e| BadInput(e.to_string()))?;
    let first =
        env.endpoints.first().cloned().ok_or_else(|| {
            BadInput("XLREG_ENDPOINTS lists no endpoint to listen on".to_string())
        })?;
    runtime()?.block_on(async move {
        tokio::time::timeout(limit, ring_inner(env, first, a.message))
            .await
            .map_err(|_| anyhow::anyhow!("the ring did not complete within {limit:?}"))?
    })
}

async fn ring_inner(env: UpEnv, first: String, message: Option<String>) -> anyhow::Result<()> {
    // Listen before joining, so that the predecessor can connect as soon
    // as it knows the cluster.
    let tcp = TcpListener::bind(&first)
        .await
        .with_context(|| format!("listening on {first}"))?;
    let (node, view) = env
        .boot(&BootOptions::default())
        .await
        .map_err(|e| client_err(e, &format!("joining cluster {}", env.cluster_id)))?;
    let n = view.members.len();
    let me = view.self_index;
    let next = (me + 1) % n;
    let prev = (me + n - 1) % n;
    let listener = PeerListener::from_listener(tcp, &view, &node)?;
    let msg = message.unwrap_or_else(|| format!("hello from {} (member {me})", node.name));
    let receive = async {
        loop {
            match listener.accept().await {
                Ok((peer, mut s)) => {
                    let got = recv_message(&mut s).await?;
                    if peer.index() == Some(prev) {
                        return anyhow::Ok((peer, got, s.handshake_time()));
                    }
                    eprintln!("note: a message from {peer}, not from our predecessor");
                }
                Err(e) => eprintln!("refused a dialer: {}", xlreg::ErrorChain(&e)),
            }
        }
    };
    let send = async {
        let conn = PeerConnector::new(&view, &node)?;
        let mut s = conn.connect(next).await?;
        send_message(&mut s, msg.as_bytes()).await?;
        anyhow::Ok(s.handshake_time())
    };
    let (got, sent) = tokio::join!(receive, send);
    let label = member_label(&view, me);
    match &sent {
        Ok(hs) => println!(
            "{label}: sent {} bytes to {}, handshake {}",
            msg.len(),
            member_label(&view, next),
            ms(*hs)
        ),
        Err(e) => eprintln!(
            "{label}: sending to {} failed: {e:#}",
            member_label(&view, next)
        ),
    }
    let (peer, bytes, hs) =
        got.with_context(|| format!("receiving from {}", member_label(&view, prev)))?;
    println!(
        "{label}: received {} bytes from {peer}, authenticated by its registered sig key, \
         handshake {}: {:?}",
        bytes.len(),
        ms(hs),
        String::from_utf8_lossy(&bytes)
    );
    if sent.is_err() {
        bail!("sending to {} failed", member_label(&view, next));
    }
    Ok(())
}

async fn join(j: &JoinAs) -> anyhow::Result<(NodeIdentity, ClusterView)> {
    let wait = seconds("--wait", j.wait)?;
    let cluster = j.cluster.cluster_ref()?;
    let (rc, client) = j.conn.load()?;
    let node = j.node.identity()?;
    let opts = BootOptions {
        client,
        wait: Some(wait),
        ..BootOptions::default()
    };
    let view = boot(&rc, &cluster, &node, &opts)
        .await
        .map_err(|e| client_err(e, &format!("joining cluster {cluster} as {:?}", node.name)))?;
    Ok((node, view))
}

fn send(a: SendArgs) -> anyhow::Result<()> {
    let msg = match &a.message {
        Some(m) => m.clone().into_bytes(),
        None => {
            let mut b = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(std::io::stdin(), MAX_MESSAGE as u64 + 1),
                &mut b,
            )
            .context("reading the message from standard input")?;
            b
        }
    };
    if msg.len() > MAX_MESSAGE {
        bail!(BadInput(format!(
            "the message is longer than {MAX_MESSAGE} bytes"
        )));
    }
    runtime()?.block_on(async move {
        let (conn, cluster_id, members) = if a.anonymous {
            let j = &a.join;
            let cluster = j.cluster.cluster_ref()?;
            let (rc, opts) = j.conn.load()?;
            let reader = ephemeral_identity(NodeOptions {
                name: Some(format!("client-{}", NodeIdentity::default_name())),
                key_bits: j.node.key_bits,
                ..NodeOptions::default()
            })
            .await
            .map_err(|e| client_err(e, "making a reader identity"))?;
            let list = read_cluster(&rc, &cluster, &reader, &opts)
                .await
                .map_err(|e| client_err(e, &format!("reading the members of cluster {cluster}")))?;
            let conn = PeerConnector::anonymous(list.cluster_id, &list.members)?;
            (conn, list.cluster_id, list.members)
        } else {
            let (node, view) = join(&a.join).await?;
            let conn = PeerConnector::new(&view, &node)?;
            (conn, view.cluster_id, view.members)
        };
        let to = match (a.to, &a.to_name) {
            (Some(i), _) if members.iter().any(|m| m.index == i) => i,
            (Some(i), _) => bail!(BadInput(format!(
                "--to {i}: cluster {cluster_id} has members 0..{}",
                members.len()
            ))),
            (None, Some(name)) => match members.iter().find(|m| &m.name == name) {
                Some(m) => m.index,
                None => bail!(BadInput(format!(
                    "--to-name {name:?}: no such member in cluster {cluster_id} (members: {})",
                    members
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            },
            (None, None) => bail!(BadInput("give --to INDEX or --to-name NAME".into())),
        };
        let mut s = conn.connect_endpoint(to, a.endpoint_index).await?;
        send_message(&mut s, &msg).await?;
        println!(
            "sent {} bytes to {}, handshake {}",
            msg.len(),
            s.peer(),
            ms(s.handshake_time())
        );
        Ok(())
    })
}

fn listen(a: ListenArgs) -> anyhow::Result<()> {
    let limit = seconds("--listen-for", a.listen_for)?;
    runtime()?.block_on(async move {
        let (node, view) = join(&a.join).await?;
        let l = PeerListener::bind(&view, &node, a.endpoint_index)
            .await?
            .allow_anonymous(a.anonymous);
        eprintln!(
            "{} listening on {}",
            member_label(&view, view.self_index),
            l.local_addr()?
        );
        let start = Instant::now();
        let mut got = 0;
        while got < a.count {
            let left = limit.saturating_sub(start.elapsed());
            let r = tokio::time::timeout(left, async {
                let (peer, mut s) = l.accept().await?;
                let msg = recv_message(&mut s).await?;
                anyhow::Ok((peer, msg, s.handshake_time()))
            })
            .await
            .map_err(|_| anyhow::anyhow!("{got} of {} messages after {limit:?}", a.count))?;
            match r {
                Ok((peer, msg, hs)) => {
                    got += 1;
                    println!(
                        "{peer} (handshake {}): {}",
                        ms(hs),
                        String::from_utf8_lossy(&msg)
                    );
                }
                Err(e) => eprintln!("refused: {e:#}"),
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_with_the_peer_commands_is_well_formed() {
        use clap::CommandFactory;
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn out_of_range_seconds_are_bad_input_naming_the_flag() {
        for s in [0.0, -1.0, f64::NAN, 1e9] {
            let e = seconds("--listen-for", s).unwrap_err();
            assert!(e.downcast_ref::<BadInput>().is_some());
            assert!(e.to_string().contains("--listen-for"), "{e}");
        }
        assert_eq!(seconds("--x", 1.5).unwrap(), Duration::from_millis(1500));
    }
}
