//! `xlreg up` without `-- CMD`: the members live in this process.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::AsyncWriteExt;
use xlreg::regcred::RegCred;
use xlreg::testing::{self, LaunchOptions, LocalCluster};

use super::args::{boot_options, key_gen, UpArgs};
use super::report::{registry_line, Report};
use super::ui::Ui;

pub(super) async fn run(
    a: UpArgs,
    external: Option<(RegCred, PathBuf)>,
    ui: Ui,
    signal: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let opts = LaunchOptions {
        size: a.size,
        endpoints: a.endpoints,
        key_bits: a.key_bits,
        key_gen: key_gen(&a),
        key_pool: a.key_pool.clone(),
        name: Some(a.name.clone().unwrap_or_else(|| testing::unique_name("up"))),
        regcred: external.as_ref().map(|(rc, _)| rc.clone()),
        boot: boot_options(&a),
        observer: ui.observer(),
        ttl: super::shared::cluster_ttl(&a),
        ..LaunchOptions::default()
    };
    tokio::pin!(signal);
    let cluster = tokio::select! {
        r = LocalCluster::launch_with(opts) => r,
        _ = &mut signal => {
            ui.clear();
            bail!("interrupted before the cluster was complete");
        }
    };
    ui.clear();
    let cluster = cluster.map_err(anyhow::Error::new)?;
    let regcred_path = match (&external, cluster.registry()) {
        (Some((_, p)), _) => Some(p.clone()),
        (None, Some(r)) => Some(r.regcred_path().to_path_buf()),
        (None, None) => None,
    };
    let report = Report {
        view: cluster.view().clone(),
        timings: cluster.timings,
        key_bits: a.key_bits,
        keys_reused: cluster.keys_reused,
        keys_generated: cluster.keys_generated,
        registry: registry_line(cluster.regcred(), cluster.registry().is_some()),
        regcred_path,
    };
    report.print(a.json);
    if a.keep {
        let mut greeters = tokio::task::JoinSet::new();
        for m in &cluster.members {
            for l in m.listeners() {
                let l = l.try_clone().context("duplicating a listening socket")?;
                let line = format!(
                    "xlreg up: member {} (slot {}) of cluster {} {}\n",
                    m.identity.name,
                    m.index(),
                    cluster.name,
                    cluster.id()
                );
                greeters.spawn(greet(l, line));
            }
        }
        eprintln!(
            "{} members and the registry are serving; Ctrl-C stops them",
            cluster.members.len()
        );
        signal.await;
        greeters.shutdown().await;
    }
    if let (Some((rc, _)), false) = (&external, a.keep) {
        let first = &cluster.members[0].identity;
        super::shared::delete_from_shared(rc, first, cluster.id(), &cluster.name).await;
    }
    cluster.shutdown().await;
    Ok(())
}

/// Answer every connection to a member's endpoint with one line.
async fn greet(l: std::net::TcpListener, line: String) {
    let l = match l
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(l))
    {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot serve a member endpoint: {e}");
            return;
        }
    };
    loop {
        if let Ok((mut s, _)) = l.accept().await {
            let _ =
                tokio::time::timeout(Duration::from_secs(1), s.write_all(line.as_bytes())).await;
        }
    }
}
