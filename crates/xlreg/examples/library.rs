//! The README's library example: create a cluster, boot a member, print
//! its peers. README.md quotes everything below this header verbatim
//! (`tests/readme.rs` checks that), so the README's code always compiles.
//!
//! ```text
//! xlreg serve --data-dir xlreg-data &
//! cargo run -p xlreg --example library
//! ```

use xlreg::client::{
    boot, create_cluster, BootOptions, ClientOptions, ClusterRef, ClusterSpec, NodeIdentity,
    NodeOptions,
};
use xlreg::regcred::RegCred;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let regcred = RegCred::load("xlreg-data/regCred.dat")?;
    // An administrator creates the cluster once; an existing one is returned.
    let spec = ClusterSpec::new("demo", 2).endpoints(1);
    let info = create_cluster(&regcred, &spec, &ClientOptions::default()).await?;
    println!("cluster {} holds {} members", info.id, info.max_size);
    // Keys and ID are generated on first use and saved; later runs reuse them.
    let (node, _created) = NodeIdentity::load_or_create(
        std::path::Path::new("./node"),
        &NodeOptions {
            name: Some("alpha".into()),
            endpoints: Some(vec!["127.0.0.1:7001".into()]),
            ..NodeOptions::default()
        },
    )?;
    // Waits (30 s by default) until every member has joined: start the
    // members of one cluster concurrently, not one after another.
    let cluster = ClusterRef::Name("demo".into());
    let view = boot(&regcred, &cluster, &node, &BootOptions::default()).await?;
    println!("I am member {} of {}", view.self_index, view.cluster_id);
    for peer in view.peers() {
        println!("  {} {} {:?}", peer.index, peer.name, peer.endpoints);
    }
    Ok(())
}
