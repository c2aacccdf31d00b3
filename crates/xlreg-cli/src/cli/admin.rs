//! `xlreg admin clusters | cluster NAME | delete NAME | resize NAME N |
//! evict NAME MEMBER | stats`: the admin
//! JSON API of a registry's HTTP side door (`xlreg serve --http`) from a
//! shell. The token comes from `--token-file`, else `DATA_DIR/admin.token`
//! when it exists (a registry on this machine); reads work without one on
//! a loopback side door.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};

use crate::cli::BadInput;
use xlreg::client::MemberRef;
use xlreg::http::{AdminToken, TOKEN_FILE};
use xlreg::http::{ClusterDetail, ClusterSummary, Stats};
use xlreg::server::DEFAULT_DATA_DIR;

/// Talk to a registry's admin API.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The side door's base URL, e.g. http://127.0.0.1:8080. Also read
    /// from XLREG_HTTP.
    #[arg(long, env = "XLREG_HTTP", value_name = "URL")]
    pub http: String,
    /// File holding the admin token (default: DATA_DIR/admin.token if it
    /// exists).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The registry's data directory, where `xlreg serve` wrote admin.token.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Print the JSON the API returned instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub what: AdminCommand,
}

/// Admin operations.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// List clusters.
    Clusters,
    /// Show one cluster and its members.
    Cluster {
        /// Cluster name.
        name: String,
    },
    /// Delete a cluster (needs the token); durable when this returns.
    Delete {
        /// Cluster name.
        name: String,
    },
    /// Change a cluster's size (needs the token): grow always; shrink only
    /// when the slots from N up are empty (evict their members first).
    Resize {
        /// Cluster name.
        name: String,
        /// The new size, 2..=64.
        size: u32,
    },
    /// Remove a member from its slot (needs the token); the next member to
    /// join takes the slot, the others keep theirs.
    Evict {
        /// Cluster name.
        name: String,
        /// The member: all digits is a slot index, anything else a name.
        member: String,
    },
    /// Server statistics.
    Stats,
}

fn token(a: &AdminArgs) -> anyhow::Result<Option<AdminToken>> {
    if let Some(p) = &a.token_file {
        return Ok(Some(
            AdminToken::from_file(p).map_err(|e| BadInput(format!("--token-file: {e}")))?,
        ));
    }
    let p = a.data_dir.join(TOKEN_FILE);
    if p.exists() {
        return Ok(Some(
            AdminToken::from_file(&p).map_err(|e| BadInput(e.to_string()))?,
        ));
    }
    Ok(None)
}

/// Percent-encode a cluster name for a URL path segment.
fn segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn call(
    a: &AdminArgs,
    method: &str,
    path: &str,
    tok: &Option<AdminToken>,
) -> anyhow::Result<serde_json::Value> {
    call_with(a, method, path, tok, None)
}

/// [`call`] with a JSON request body.
fn call_with(
    a: &AdminArgs,
    method: &str,
    path: &str,
    tok: &Option<AdminToken>,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let base = a.http.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(BadInput(format!(
            "--http {base}: must start with http:// or https://"
        ))
        .into());
    }
    let url = format!("{base}{path}");
    let mut req = ureq::request(method, &url).timeout(std::time::Duration::from_secs(15));
    if let Some(t) = tok {
        req = req.set("Authorization", &format!("Bearer {}", t.secret()));
    }
    let sent = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match sent {
        Ok(r) => r
            .into_json()
            .with_context(|| format!("{method} {url}: reply is not JSON")),
        Err(ureq::Error::Status(code, r)) => {
            let msg = r
                .into_json::<serde_json::Value>()
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
                .unwrap_or_default();
            let hint = if code == 401 && tok.is_none() {
                " (no token: pass --token-file or --data-dir)"
            } else {
                ""
            };
            Err(anyhow!("{method} {url}: HTTP {code}: {msg}{hint}"))
        }
        Err(e) => Err(anyhow!("{method} {url}: {e}")),
    }
}

fn when(ms: Option<u64>) -> String {
    match ms {
        None | Some(0) => "-".into(),
        Some(ms) => xlreg::http::relative(ms, xlreg::registry::unix_now_ms()),
    }
}

fn print_summaries(list: &[ClusterSummary]) {
    println!(
        "{:<24} {:<40} {:>7} {:>12} {:>14}",
        "NAME", "ID", "MEMBERS", "ACTIVE", "EXPIRES"
    );
    for c in list {
        println!(
            "{:<24} {:<40} {:>7} {:>12} {:>14}",
            c.name,
            c.id,
            format!("{}/{}", c.members, c.size),
            when(Some(c.last_active_ms)),
            c.expires_ms.map_or("never".into(), |e| when(Some(e)))
        );
    }
}

/// Every live cluster, by name: `/api/clusters` a page at a time (the
/// server bounds each page), following on after the last name of each
/// full page.
fn all_clusters(a: &AdminArgs, tok: &Option<AdminToken>) -> anyhow::Result<serde_json::Value> {
    /// Most pages read (the server's page is 500 clusters).
    const MAX_PAGES: usize = 10_000;
    let page = xlreg::http::API_PAGE;
    let mut all = Vec::new();
    let mut after = String::new();
    for _ in 0..MAX_PAGES {
        let got = call(a, "GET", &format!("/api/clusters?limit={page}{after}"), tok)?;
        let serde_json::Value::Array(list) = got else {
            return Err(anyhow!("GET /api/clusters: the reply is not a list"));
        };
        let full = list.len() >= page;
        let last = list
            .last()
            .and_then(|c| c.get("name"))
            .and_then(|n| n.as_str())
            .map(segment);
        all.extend(list);
        match (full, last) {
            (true, Some(name)) => after = format!("&after={name}"),
            _ => return Ok(serde_json::Value::Array(all)),
        }
    }
    Err(anyhow!("GET /api/clusters: more than {MAX_PAGES} pages"))
}

/// Mutating calls need the token: refuse early, naming where it was looked
/// for.
fn need_token(a: &AdminArgs, tok: &Option<AdminToken>, what: &str) -> anyhow::Result<()> {
    if tok.is_none() {
        return Err(BadInput(format!(
            "{what} needs the admin token: no --token-file and no {}",
            a.data_dir.join(TOKEN_FILE).display()
        ))
        .into());
    }
    Ok(())
}

/// The `version` of a change's reply, or `?`.
fn version(out: &serde_json::Value) -> String {
    out.get("version")
        .and_then(|v| v.as_u64())
        .map_or("?".into(), |v| v.to_string())
}

/// Run an admin command.
pub fn run(a: AdminArgs) -> anyhow::Result<()> {
    let tok = token(&a)?;
    let out = match &a.what {
        AdminCommand::Clusters => all_clusters(&a, &tok)?,
        AdminCommand::Cluster { name } => {
            call(&a, "GET", &format!("/api/clusters/{}", segment(name)), &tok)?
        }
        AdminCommand::Delete { name } => {
            need_token(&a, &tok, "delete")?;
            call(
                &a,
                "DELETE",
                &format!("/api/clusters/{}", segment(name)),
                &tok,
            )?
        }
        AdminCommand::Resize { name, size } => {
            xlreg::limits::check_cluster_size(*size)
                .map_err(|e| BadInput(format!("resize {name}: {e}")))?;
            need_token(&a, &tok, "resize")?;
            let path = format!("/api/clusters/{}/resize", segment(name));
            let body = serde_json::json!({ "size": size });
            call_with(&a, "POST", &path, &tok, Some(body))?
        }
        AdminCommand::Evict { name, member } => {
            let member: MemberRef = member
                .parse()
                .map_err(|e| BadInput(format!("evict {name}: {e}")))?;
            need_token(&a, &tok, "evict")?;
            let path = format!("/api/clusters/{}/evict", segment(name));
            let body = match &member {
                MemberRef::Name(n) => serde_json::json!({ "member": n }),
                MemberRef::Index(i) => serde_json::json!({ "member": i }),
            };
            call_with(&a, "POST", &path, &tok, Some(body))?
        }
        AdminCommand::Stats => call(&a, "GET", "/api/stats", &tok)?,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    match &a.what {
        AdminCommand::Clusters => {
            let list: Vec<ClusterSummary> = serde_json::from_value(out)?;
            print_summaries(&list);
        }
        AdminCommand::Cluster { .. } => {
            let d: ClusterDetail = serde_json::from_value(out)?;
            print_summaries(std::slice::from_ref(&d.summary));
            println!();
            println!("{:>3} {:<16} {:<40} ENDPOINTS", "#", "NAME", "ID");
            for m in &d.member_list {
                println!(
                    "{:>3} {:<16} {:<40} {}",
                    m.index,
                    m.name,
                    m.id,
                    m.endpoints.join(" ")
                );
            }
        }
        AdminCommand::Delete { name } => {
            println!(
                "deleted {name} ({})",
                out.get("id").and_then(|v| v.as_str()).unwrap_or("?")
            );
        }
        AdminCommand::Resize { name, size } => {
            println!(
                "resized {name} to {size} members (version {})",
                version(&out)
            );
        }
        AdminCommand::Evict { name, member } => {
            let member: MemberRef = member.parse()?;
            println!("evicted {member} of {name} (version {})", version(&out));
        }
        AdminCommand::Stats => {
            let s: Stats = serde_json::from_value(out)?;
            println!("clusters          {}", s.clusters);
            println!("members           {}", s.members);
            println!("connections       {}", s.connections);
            println!("registrations     {}", s.registrations);
            println!("expired clusters  {}", s.expired_clusters);
            println!("deleted clusters  {}", s.deleted_clusters);
        }
    }
    Ok(())
}
