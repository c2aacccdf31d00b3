//! The database URL: parsed once, and shown only with its password
//! replaced, so no log line, error or status output ever carries it.

use tokio_postgres::config::Host;
use tokio_postgres::Config;

/// A parsed PostgreSQL connection string and its printable form.
#[derive(Clone)]
pub struct DbUrl {
    config: Config,
    shown: String,
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
        let config: Config = raw.parse().map_err(|e: tokio_postgres::Error| UrlError {
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
        Ok(DbUrl { config, shown })
    }

    /// A configuration with its already-redacted printable form.
    pub(crate) fn from_parts(config: Config, shown: String) -> DbUrl {
        DbUrl { config, shown }
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
        DbUrl { config, shown }
    }

    /// `host:port/db`, for log lines.
    pub fn short(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => String::new(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{host}:{port}/{}",
            self.config.get_dbname().unwrap_or_default()
        )
    }
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
}
