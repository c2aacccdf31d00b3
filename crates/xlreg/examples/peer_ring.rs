//! A three-member (or N-member) ring over the secure peer channel: each
//! member sends a message to the next one (index + 1 mod N) over mutually
//! authenticated TLS 1.3 and waits for the message of the previous one.
//! Exits 0 only when its message was delivered and the expected one
//! arrived from the member the registry lists before it.
//!
//! ```text
//! cargo build --example peer_ring
//! cargo run -- up --size 3 -- target/debug/examples/peer_ring
//! ```

use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use xlreg::client::BootOptions;
use xlreg::client::UpEnv;
use xlreg::peer::{connect, PeerListener};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer_ring: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let env = UpEnv::from_env()?;
    let tcp = TcpListener::bind(&env.endpoints[0]).await?; // listen before joining
    let (node, view) = env.boot(&BootOptions::default()).await?;
    let (me, n) = (view.self_index, view.members.len());
    let (next, prev) = ((me + 1) % n, (me + n - 1) % n);
    let listener = PeerListener::from_listener(tcp, &view, &node)?;
    let send = async {
        let mut s = connect(&view, &node, next).await?; // it proved it is member `next`
        s.write_all(format!("hello from member {me}").as_bytes())
            .await?;
        s.shutdown().await // TLS close_notify ends the message
    };
    let receive = async {
        let (peer, s) = listener.accept().await?; // we proved we are member `me`
        let mut msg = String::new();
        s.take(1024).read_to_string(&mut msg).await?;
        Ok::<_, Box<dyn std::error::Error>>((peer, msg))
    };
    let (sent, got) = tokio::join!(send, receive);
    sent?;
    let (peer, msg) = got?;
    println!("member {me} ({}) got {msg:?} from {peer}", node.name);
    if peer.index() != Some(prev) || msg != format!("hello from member {prev}") {
        return Err(format!("expected the message of member {prev}").into());
    }
    Ok(())
}
