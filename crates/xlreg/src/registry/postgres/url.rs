//! The database URL: parsed once, and shown only with its password
//! replaced, so no log line, error or status output ever carries it.
//!
//! Besides libpq's parameters (several hosts, `target_session_attrs`, …,
//! all handled by tokio-postgres) it carries xlreg's own, which are taken
//! out before the rest is parsed:
//! * `xlreg_listen=on|off` — `on` (default): held GetClusters hear other
//!   servers' changes through LISTEN/NOTIFY, and fall back to polling when
//!   the database refuses LISTEN; `off`: never LISTEN, always poll (for
//!   engines without LISTEN, or connection poolers in transaction mode).
//! * `xlreg_poll_ms=N` — how often changes are polled for when not
//!   listening, 10 to 60000 ms ([`DEFAULT_POLL`] by default).
//! * `xlreg_notify=on|off` — `on` (default): committed joins and deletes
//!   are announced with `pg_notify`; `off`: not (for engines where
//!   `pg_notify` is an error; only when no server of the group listens).

use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::Config;

/// How often watched clusters are polled when LISTEN is off or refused.
pub const DEFAULT_POLL: Duration = Duration::from_millis(250);

/// Bounds of `xlreg_poll_ms`.
const POLL_MS: std::ops::RangeInclusive<u64> = 10..=60_000;

/// How a server hears changes made through the other servers of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watch {
    /// Use LISTEN/NOTIFY (falling back to polling if it is refused).
    pub listen: bool,
    /// Interval of the polling that replaces it.
    pub poll: Duration,
    /// Announce committed changes with `pg_notify`.
    pub notify: bool,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            listen: true,
            poll: DEFAULT_POLL,
            notify: true,
        }
    }
}

/// A parsed PostgreSQL connection string and its printable form.
#[derive(Clone)]
pub struct DbUrl {
    config: Config,
    shown: String,
    watch: Watch,
}

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// A connection string that could not be parsed (shown redacted).
#[derive(Debug, thiserror::Error)]
#[error("bad PostgreSQL URL {shown}: {msg}")]
pub struct UrlError {
    /// The URL with its password replaced.
    pub shown: String,
    /// What is wrong.
    pub msg: String,
}

impl DbUrl {
    /// Parse `postgres://user:password@host:port/db?…` (or the
    /// `key=value` form). The error names the redacted URL.
    pub fn parse(raw: &str) -> Result<DbUrl, UrlError> {
        let shown = redact(raw);
        let (rest, watch) = take_watch(raw).map_err(|msg| UrlError {
            shown: shown.clone(),
            msg,
        })?;
        let config: Config = rest.parse().map_err(|e: tokio_postgres::Error| UrlError {
            shown: shown.clone(),
            // The parser's message never quotes the password.
            msg: e.to_string(),
        })?;
        if config.get_hosts().is_empty() {
            return Err(UrlError {
                shown,
                msg: "no host given".into(),
            });
        }
        if config.get_dbname().is_none() {
            return Err(UrlError {
                shown,
                msg: "no database name given".into(),
            });
        }
        Ok(DbUrl {
            config,
            shown,
            watch,
        })
    }

    /// The same URL (printable form, xlreg parameters) with `config`.
    pub(crate) fn with_config(&self, config: Config) -> DbUrl {
        DbUrl {
            config,
            ..self.clone()
        }
    }

    /// How changes made through other servers are heard
    /// (`xlreg_listen`, `xlreg_poll_ms`).
    pub fn watch(&self) -> Watch {
        self.watch
    }

    /// The parsed configuration (carries the password).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The same server with another database name (tests and copies).
    pub fn with_dbname(&self, db: &str) -> DbUrl {
        let mut config = self.config.clone();
        config.dbname(db);
        let shown = match self.shown.rsplit_once('/') {
            Some((head, tail)) if self.shown.contains("://") => {
                let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
                format!("{head}/{db}{query}")
            }
            _ => format!("{} dbname={db}", self.shown),
        };
        DbUrl {
            config,
            shown,
            watch: self.watch,
        }
    }

    /// `host:port/db` (`h1:p1,h2:p2/db` with several hosts), for log lines.
    pub fn short(&self) -> String {
        let ports = self.config.get_ports();
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let host = match h {
                    Host::Tcp(h) => h.clone(),
                    #[cfg(unix)]
                    Host::Unix(p) => p.display().to_string(),
                };
                // One port applies to every host; else one per host.
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                format!("{host}:{port}")
            })
            .collect();
        format!(
            "{}/{}",
            hosts.join(","),
            self.config.get_dbname().unwrap_or_default()
        )
    }
}

/// `raw` without xlreg's own parameters, and what they asked for. In a
/// URL they are query parameters (`?xlreg_listen=off&…`); in the
/// key=value form, `xlreg_listen=off` words.
fn take_watch(raw: &str) -> Result<(String, Watch), String> {
    let mut watch = Watch::default();
    let mut apply = |key: &str, value: &str| -> Result<bool, String> {
        let on_off = |v: &str| match v {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            v => Err(format!("{key}={v}: expected on or off")),
        };
        match key {
            "xlreg_listen" => {
                watch.listen = on_off(value)?;
                Ok(true)
            }
            "xlreg_notify" => {
                watch.notify = on_off(value)?;
                Ok(true)
            }
            "xlreg_poll_ms" => {
                let ms: u64 = value
                    .parse()
                    .ok()
                    .filter(|ms| POLL_MS.contains(ms))
                    .ok_or_else(|| {
                        format!(
                            "xlreg_poll_ms={value}: expected milliseconds from {} to {}",
                            POLL_MS.start(),
                            POLL_MS.end()
                        )
                    })?;
                watch.poll = Duration::from_millis(ms);
                Ok(true)
            }
            k if k.starts_with("xlreg_") => Err(format!(
                "unknown parameter {k} (xlreg knows xlreg_listen, xlreg_poll_ms and xlreg_notify)"
            )),
            _ => Ok(false),
        }
    };
    let rest = if raw.contains("://") {
        match raw.split_once('?') {
            None => raw.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !apply(k, v)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for word in raw.split(' ') {
            let taken = match word.split_once('=') {
                Some((k, v)) => apply(k.trim(), v.trim())?,
                None => false,
            };
            if !taken {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    Ok((rest, watch))
}

/// Replace the password in a PostgreSQL URL (`scheme://user:PASSWORD@…`,
/// `?password=…`) or key=value string (`password=…`) with `***`.
pub fn redact(raw: &str) -> String {
    let mut s = raw.to_string();
    if let Some(scheme_end) = s.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = s[rest_start..]
            .find(['/', '?'])
            .map_or(s.len(), |i| rest_start + i);
        if let Some(at) = s[rest_start..authority_end].rfind('@') {
            let userinfo = &s[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let from = rest_start + colon + 1;
                s.replace_range(from..rest_start + at, "***");
            }
        }
    }
    // `password=` as a query parameter or key=value pair.
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(pos) = lower[i..].find("password=") {
        let start = i + pos + "password=".len();
        out.push_str(&s[i..start]);
        out.push_str("***");
        let bytes = s.as_bytes();
        let mut end = start;
        if bytes.get(end) == Some(&b'\'') {
            end += 1;
            while end < bytes.len() && bytes[end] != b'\'' {
                end += 1;
            }
            end = (end + 1).min(bytes.len());
        } else {
            while end < bytes.len() && !matches!(bytes[end], b'&' | b' ') {
                end += 1;
            }
        }
        i = end;
    }
    out.push_str(&s[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_in_every_form() {
        assert_eq!(
            redact("postgres://u:s3cret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgresql://u:p%40ss@h/db?password=x&sslmode=disable"),
            "postgresql://u:***@h/db?password=***&sslmode=disable"
        );
        assert_eq!(
            redact("host=h user=u password='a b' dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
        assert_eq!(redact("host=h PASSWORD=zz"), "host=h PASSWORD=***");
    }

    #[test]
    fn parse_errors_name_the_redacted_url() {
        let e = DbUrl::parse("postgres://u:hunter2@h:notaport/db").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("postgres://u:***@h:notaport/db"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let e = DbUrl::parse("postgres://u:hunter2@h:5432").unwrap_err();
        assert!(e.to_string().contains("no database name"), "{e}");
    }

    #[test]
    fn with_dbname_keeps_the_password_out_of_the_shown_form() {
        let u = DbUrl::parse("postgres://u:pw@127.0.0.1:5/a?sslmode=disable").unwrap();
        let b = u.with_dbname("b");
        assert_eq!(
            b.to_string(),
            "postgres://u:***@127.0.0.1:5/b?sslmode=disable"
        );
        assert_eq!(b.config().get_dbname(), Some("b"));
        assert_eq!(b.short(), "127.0.0.1:5/b");
        assert_eq!(format!("{b:?}"), b.to_string());
    }

    #[test]
    fn two_hosts_parse_and_show_both() {
        let u = DbUrl::parse(
            "postgres://u:pw@127.0.0.1:56001,127.0.0.1:56002/db?target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(u.config().get_hosts().len(), 2);
        assert_eq!(u.config().get_ports(), &[56001, 56002]);
        assert_eq!(u.short(), "127.0.0.1:56001,127.0.0.1:56002/db");
        assert_eq!(
            u.config().get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        assert!(!u.to_string().contains("pw"));
    }

    #[test]
    fn xlreg_parameters_are_taken_out_and_kept_across_dbname_changes() {
        let u = DbUrl::parse("postgres://u:pw@h:5/a").unwrap();
        assert_eq!(u.watch(), Watch::default());
        let u =
            DbUrl::parse("postgres://u:pw@h:5/a?xlreg_listen=off&sslmode=disable&xlreg_poll_ms=20")
                .unwrap();
        assert_eq!(
            u.watch(),
            Watch {
                listen: false,
                poll: Duration::from_millis(20),
                notify: true,
            }
        );
        let b = u.with_dbname("b");
        assert_eq!(b.watch(), u.watch());
        assert_eq!(
            b.to_string(),
            "postgres://u:***@h:5/b?xlreg_listen=off&sslmode=disable&xlreg_poll_ms=20"
        );
        let kv = DbUrl::parse("host=h dbname=d xlreg_listen=off").unwrap();
        assert!(!kv.watch().listen);
        assert_eq!(kv.config().get_dbname(), Some("d"));
    }

    #[test]
    fn bad_xlreg_parameters_are_refused_by_name() {
        for (raw, want) in [
            ("postgres://h/d?xlreg_listen=maybe", "xlreg_listen=maybe"),
            ("postgres://h/d?xlreg_notify=no", "xlreg_notify=no"),
            ("postgres://h/d?xlreg_poll_ms=5", "xlreg_poll_ms=5"),
            ("postgres://h/d?xlreg_poll_ms=x", "xlreg_poll_ms=x"),
            (
                "postgres://h/d?xlreg_lisen=off",
                "unknown parameter xlreg_lisen",
            ),
        ] {
            let e = DbUrl::parse(raw).unwrap_err().to_string();
            assert!(e.contains(want), "{raw}: {e}");
        }
    }
}
