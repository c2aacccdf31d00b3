//! The status page: plain server-rendered HTML that works without
//! JavaScript (every cluster's members sit in a `<details>`; delete is a
//! form POST), plus a few lines of inline script that re-fetch the cluster
//! table fragment every second so a forming cluster fills in live.
//! Nothing is fetched from anywhere but this server.

use std::fmt::Write;

use super::view::{ClusterDetail, Stats};
use crate::regcred::RegCred;

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "12 s ago", "in 3 min": a time relative to now.
pub fn relative(ms: u64, now_ms: u64) -> String {
    let (d, past) = if ms <= now_ms {
        (now_ms - ms, true)
    } else {
        (ms - now_ms, false)
    };
    let s = d / 1000;
    let text = match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    };
    if past {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

/// The cluster table (the fragment the script refreshes).
pub fn cluster_table(clusters: &[ClusterDetail], now_ms: u64) -> String {
    let mut h = String::new();
    if clusters.is_empty() {
        return "<p id=\"no-clusters\">No clusters.</p>\n".into();
    }
    h.push_str("<table id=\"clusters\"><thead><tr><th>Name</th><th>ID</th><th>Members</th><th>Version</th><th>Created</th><th>Last activity</th><th>Expiry</th><th></th></tr></thead><tbody>\n");
    for c in clusters {
        let s = &c.summary;
        let name = esc(&s.name);
        let created = if s.created_ms == 0 {
            "–".into()
        } else {
            relative(s.created_ms, now_ms)
        };
        let expiry = match s.expires_ms {
            Some(e) => relative(e, now_ms),
            None => "never".into(),
        };
        let complete = if s.members as u32 >= s.size {
            " complete"
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<tr class=\"cluster{complete}\" data-name=\"{name}\"><td class=\"name\">{name}</td><td><code>{}</code></td><td class=\"count\">{}/{}</td><td class=\"version\">{}</td><td>{created}</td><td>{}</td><td>{expiry}</td>\
             <td><form method=\"post\" action=\"/admin/delete\" class=\"delete\"><input type=\"hidden\" name=\"name\" value=\"{name}\"><input type=\"password\" name=\"token\" placeholder=\"admin token\" autocomplete=\"off\"><button type=\"submit\">Delete</button></form></td></tr>",
            esc(&s.id),
            s.members,
            s.size,
            s.version,
            relative(s.last_active_ms, now_ms),
        );
        let _ = write!(
            h,
            "<tr class=\"members\"><td colspan=\"8\"><details data-name=\"{name}\"><summary>{} member(s)</summary><table class=\"member-table\"><thead><tr><th>#</th><th>Name</th><th>ID</th><th>Endpoints</th><th>Comms key SHA-256</th><th>Sig key SHA-256</th></tr></thead><tbody>",
            c.member_list.len()
        );
        for m in &c.member_list {
            let _ = write!(
                h,
                "<tr class=\"member\"><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                m.index,
                esc(&m.name),
                esc(&m.id),
                esc(&m.endpoints.join(" ")),
                esc(&m.comms_key_sha256),
                esc(&m.sig_key_sha256),
            );
        }
        h.push_str("</tbody></table>");
        history_table(&mut h, c, now_ms);
        h.push_str("</details></td></tr>\n");
    }
    h.push_str("</tbody></table>\n");
    h
}

/// A cluster's last changes, newest first (inside its `<details>`).
fn history_table(h: &mut String, c: &ClusterDetail, now_ms: u64) {
    if c.history.is_empty() {
        return;
    }
    h.push_str("<table class=\"history\"><thead><tr><th>Version</th><th>When</th><th>Change</th><th>By</th></tr></thead><tbody>");
    for e in c.history.iter().rev() {
        let _ = write!(
            h,
            "<tr class=\"change\"><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td></tr>",
            e.version,
            relative(e.at_ms, now_ms),
            esc(&e.kind),
            esc(&e.detail),
            esc(&e.by),
        );
    }
    h.push_str("</tbody></table>");
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0}th,td{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}code{font-size:.85em}tr.complete td.count{color:#080;font-weight:bold}\
tr.members>td{border-bottom:2px solid #bbb;padding-left:2em}dt{font-weight:bold}dd{margin:0 0 .4em 1em}\
form.delete input{width:9em}#stats span{margin-right:1.5em}";

const SCRIPT: &str = r#"(function(){
  var box=document.getElementById('cluster-box');
  function refresh(){
    var open={};
    box.querySelectorAll('details[open]').forEach(function(d){open[d.dataset.name]=1;});
    var typed={};
    box.querySelectorAll('form.delete').forEach(function(f){var t=f.token.value;if(t)typed[f.name.value]=t;});
    if(document.activeElement&&box.contains(document.activeElement))return;
    fetch('/fragment/clusters',{cache:'no-store'}).then(function(r){return r.ok?r.text():null;}).then(function(t){
      if(t===null)return;
      box.innerHTML=t;
      box.querySelectorAll('details').forEach(function(d){if(open[d.dataset.name])d.open=true;});
      box.querySelectorAll('form.delete').forEach(function(f){if(typed[f.name.value])f.token.value=typed[f.name.value];});
      var s=document.getElementById('updated');if(s)s.textContent=new Date().toLocaleTimeString()+' (live)';
    }).catch(function(){});
  }
  setInterval(refresh,1000);
})();"#;

/// The part of the page the script refreshes: the counts and the
/// cluster table.
pub fn live_part(stats: &Stats, clusters: &[ClusterDetail], now_ms: u64) -> String {
    format!(
        "<p id=\"stats\"><span>{} cluster(s)</span><span>{} member(s)</span><span>{} connection(s)</span><span>updated <span id=\"updated\">{}</span></span></p>\n<h2>Clusters</h2>\n{}",
        stats.clusters,
        stats.members,
        stats.connections,
        relative(now_ms, now_ms),
        cluster_table(clusters, now_ms),
    ) + &if stats.clusters > clusters.len() {
        format!(
            "<p id=\"more\">Showing the {} most recently active of {} clusters; all are in <a href=\"/api/clusters\">/api/clusters</a>.</p>\n",
            clusters.len(),
            stats.clusters
        )
    } else {
        String::new()
    }
}

/// The whole page.
pub fn status_page(
    regcred: &RegCred,
    listen: &str,
    stats: &Stats,
    clusters: &[ClusterDetail],
    now_ms: u64,
) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>xlreg {name}</title><style>{STYLE}</style></head><body>\n\
         <h1>xlreg registry <q>{name}</q></h1>\n<dl id=\"identity\"><dt>Registry ID</dt><dd><code>{id}</code></dd>\
         <dt>Endpoint</dt><dd>{ep}</dd><dt>Listening</dt><dd>{listen}</dd><dt>Version</dt><dd>{ver}</dd>\
         <dt>Credentials</dt><dd><a href=\"/regCred.dat\" download=\"regCred.dat\">regCred.dat</a></dd></dl>\n\
         <div id=\"cluster-box\">{live}</div>\n\
         <p><small><a href=\"/metrics\">metrics</a> · <a href=\"/api/clusters\">JSON</a> · <a href=\"/api/stats\">stats</a></small></p>\n\
         <script>{SCRIPT}</script>\n</body></html>\n",
        name = esc(&regcred.name),
        id = regcred.id.to_hex(),
        ep = esc(&regcred.endpoints.join(" ")),
        listen = esc(listen),
        ver = regcred.version,
        live = live_part(stats, clusters, now_ms),
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_and_relative_times() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(relative(1_000, 13_000), "12 s ago");
        assert_eq!(relative(1_000_000, 1_000), "in 16 min");
        assert_eq!(relative(0, 3 * 86_400_000), "3 d ago");
    }

    #[test]
    fn no_clusters_says_so() {
        assert!(cluster_table(&[], 0).contains("No clusters"));
    }
}
