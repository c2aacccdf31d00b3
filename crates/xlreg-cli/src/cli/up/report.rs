//! What `xlreg up` prints once the cluster is complete: a table, or the
//! cluster view as JSON with "timings" and "regcred" added.

use std::path::PathBuf;

use xlreg::client::{ClusterView, MemberInfo};
use xlreg::regcred::RegCred;
use xlreg::testing::Timings;

pub(super) fn registry_line(rc: &RegCred, embedded: bool) -> String {
    format!(
        "{} ({})",
        rc.endpoints.first().map(String::as_str).unwrap_or("?"),
        if embedded {
            "embedded, in memory"
        } else {
            "external"
        }
    )
}

/// What `up` prints once the cluster is complete.
pub(super) struct Report {
    pub(super) view: ClusterView,
    pub(super) timings: Timings,
    pub(super) key_bits: u32,
    pub(super) keys_reused: usize,
    pub(super) keys_generated: usize,
    pub(super) registry: String,
    pub(super) regcred_path: Option<PathBuf>,
}

impl Report {
    pub(super) fn print(&self, json: bool) {
        if json {
            let mut j = self.view.to_json();
            if let Some(o) = j.as_object_mut() {
                o.insert("timings".into(), self.timings.to_json());
                o.insert(
                    "regcred".into(),
                    self.regcred_path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .into(),
                );
            }
            println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
            return;
        }
        let v = &self.view;
        println!(
            "cluster   {} {}",
            v.cluster_name.as_deref().unwrap_or("-"),
            v.cluster_id
        );
        println!(
            "members   {} of {}, {} endpoint(s) each, RSA-{} keys",
            v.members.len(),
            v.max_size,
            v.endpoint_count,
            self.key_bits
        );
        println!("registry  {}", self.registry);
        if let Some(p) = &self.regcred_path {
            println!("regcred   {}", p.display());
        }
        println!();
        print!("{}", table(&v.members));
        println!();
        let t = &self.timings;
        let keys = match (self.keys_reused, self.keys_generated) {
            (0, g) => format!("{g} generated"),
            (r, 0) => format!("{r} from the pool"),
            (r, g) => format!("{r} from the pool, {g} generated"),
        };
        println!(
            "time      keys {:.3} s ({keys}) + formation {:.3} s = total {:.3} s",
            t.keygen.as_secs_f64(),
            t.formation.as_secs_f64(),
            t.total.as_secs_f64()
        );
    }
}

/// Members as a table: slot, name, ID, endpoints, key fingerprints (the
/// first 16 hex digits of the SHA-256 of the SPKI DER).
pub fn table(members: &[MemberInfo]) -> String {
    let mut rows = vec![[
        "IDX".to_string(),
        "NAME".into(),
        "ID".into(),
        "ENDPOINTS".into(),
        "COMMS KEY".into(),
        "SIG KEY".into(),
    ]];
    for m in members {
        rows.push([
            m.index.to_string(),
            m.name.clone(),
            m.id.to_hex(),
            m.endpoints.join(","),
            m.comms_key.fingerprint()[..16].to_string(),
            m.sig_key.fingerprint()[..16].to_string(),
        ]);
    }
    let w: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line = format!(
            "{:>w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:<w4$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4],
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
