//! A test cluster whose members serve on their advertised endpoints and
//! call each other: what a distributed program's integration test does
//! with `xlreg::testing`.
//!
//! ```text
//! cargo run -p xlreg --example serve_peers
//! ```
//!
//! Each member takes the socket behind its first endpoint as a
//! `tokio::net::TcpListener` and answers every connection with its name;
//! then every member looks up its peers in its own `ClusterView` and
//! connects to each one's first endpoint.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xlreg::testing::{LaunchOptions, LocalCluster};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cluster = LocalCluster::launch_with(LaunchOptions {
        size: 3,
        ..LaunchOptions::default()
    })
    .await?;
    println!("cluster {} ({})", cluster.name, cluster.id());

    // Serve: one task per member on endpoint 0.
    for m in &mut cluster.members {
        let listener = m.take_listener(0)?;
        let name = m.identity.name.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(name.as_bytes()).await;
            }
        });
    }

    // Call: each member dials every peer it learned about.
    for m in &cluster.members {
        for peer in m.view.members.iter().filter(|p| p.id != m.identity.id) {
            let mut s = tokio::net::TcpStream::connect(&peer.endpoints[0]).await?;
            let mut answer = String::new();
            s.read_to_string(&mut answer).await?;
            println!(
                "{} -> slot {} at {}: {answer}",
                m.identity.name, peer.index, peer.endpoints[0]
            );
            if answer != peer.name {
                return Err(format!("{} answered as {answer:?}", peer.name).into());
            }
        }
    }
    cluster.shutdown().await;
    Ok(())
}
