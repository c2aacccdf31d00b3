//! A fresh PostgreSQL database per test, so PostgreSQL tests run in
//! parallel without seeing each other's rows.
//!
//! The server comes from `XLREG_TEST_POSTGRES` (a URL whose user may
//! create databases; `.ci/postgres.sh` starts one and exports it). When it
//! is unset, [`TestDb::create`] prints a visible `SKIPPED:` line and
//! returns `None` — unless `XLREG_REQUIRE_POSTGRES=1` (CI), where it
//! panics so the test fails instead of passing silently.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::NoTls;

use crate::registry::postgres::DbUrl;

/// Where the test server is.
pub const URL_VAR: &str = "XLREG_TEST_POSTGRES";
/// Set to `1` to turn "no PostgreSQL" into a failure.
pub const REQUIRE_VAR: &str = "XLREG_REQUIRE_POSTGRES";

/// A database created for one test and dropped afterwards.
#[derive(Debug)]
pub struct TestDb {
    admin: DbUrl,
    url: DbUrl,
    raw: String,
    name: String,
}

/// The server URL from the environment, or `None` after printing why the
/// caller skips (panics instead when PostgreSQL is required).
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var(REQUIRE_VAR).as_deref() == Ok("1") {
                panic!("{test}: {URL_VAR} is not set but {REQUIRE_VAR}=1: PostgreSQL is required");
            }
            // Written to the stream itself: libtest captures only the print
            // macros, and a skip must be visible in a passing run.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test}: set {URL_VAR}=postgres://… (see .ci/postgres.sh) to run it"
            );
            None
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// Create a fresh database named after `test`; `None` when skipping.
    /// Panics when the server cannot be reached (a test failure).
    pub async fn create(test: &str) -> Option<TestDb> {
        let raw = server_url(test)?;
        Some(
            Self::create_on(&raw, "t")
                .await
                .unwrap_or_else(|e| panic!("{test}: {e}")),
        )
    }

    /// Create a fresh database `xlreg_PREFIX_…` on the server of `raw` (a
    /// URL whose user may create databases); dropped with the value.
    pub async fn create_on(raw: &str, prefix: &str) -> Result<TestDb, String> {
        let admin = DbUrl::parse(raw).map_err(|e| e.to_string())?;
        let name = format!(
            "xlreg_{prefix}_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            hex::encode(rand_bytes())
        );
        let (client, conn) = admin
            .config()
            .connect(NoTls)
            .await
            .map_err(|e| format!("cannot connect to {admin}: {e}"))?;
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("CREATE DATABASE {name} on {admin}: {e}"))?;
        drop(client);
        let _ = task.await;
        let url = admin.with_dbname(&name);
        let raw = with_dbname_raw(raw, &name);
        Ok(TestDb {
            admin,
            url,
            raw,
            name,
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// The database's URL as a string, password included (to pass to a
    /// child process; never print it).
    pub fn raw_url(&self) -> &str {
        &self.raw
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn rand_bytes() -> [u8; 4] {
    let mut b = [0u8; 4];
    openssl::rand::rand_bytes(&mut b).expect("random bytes");
    b
}

/// `raw` (a `postgres://` URL) with its database replaced by `db`.
pub fn with_dbname_raw(raw: &str, db: &str) -> String {
    let (base, query) = match raw.find('?') {
        Some(i) => (&raw[..i], &raw[i..]),
        None => (raw, ""),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    match base[scheme_end..].find('/') {
        Some(i) => format!("{}/{db}{query}", &base[..scheme_end + i]),
        None => format!("{base}/{db}{query}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Best effort, on a thread of its own (Drop may run inside a runtime).
        let admin = self.admin.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let (client, conn) = admin.config().connect(NoTls).await.ok()?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Several servers of one group: one identity, one database, each on its
/// own loopback port, for tests and `xlreg bench`.
pub struct PgGroup {
    /// The servers, in the order of [`PgGroup::regcred`]'s endpoints.
    pub servers: Vec<crate::server::Server>,
    /// Credentials listing every server.
    pub regcred: crate::regcred::RegCred,
}

impl std::fmt::Debug for PgGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgGroup({:?})", self.regcred.endpoints)
    }
}

impl PgGroup {
    /// Start `n` in-memory-identity servers on `url`, all with `cfg`'s
    /// settings (its listen address, identity and data dir are replaced).
    pub async fn start(
        url: &DbUrl,
        n: usize,
        cfg: crate::server::ServerConfig,
        pool: crate::registry::postgres::PoolOptions,
    ) -> Result<PgGroup, crate::server::ServerError> {
        let identity = crate::server::ServerIdentity::generate(1024)?;
        let mut servers = Vec::with_capacity(n);
        for _ in 0..n {
            let cfg = crate::server::ServerConfig {
                listen: "127.0.0.1:0".parse().expect("valid"),
                data_dir: None,
                regcred_path: None,
                identity: Some(identity.clone()),
                store: Some(crate::registry::StoreConfig::Postgres {
                    url: Box::new(url.clone()),
                    pool: pool.clone(),
                }),
                ..cfg.clone()
            };
            let server = crate::server::Server::start(cfg).await?;
            servers.push(server);
        }
        let mut regcred = servers[0].regcred().clone();
        regcred.endpoints = servers.iter().map(|s| s.local_addr().to_string()).collect();
        Ok(PgGroup { servers, regcred })
    }

    /// The credentials with server `i` first (the others follow in order):
    /// clients of it connect to server `i` and fail over to the rest.
    pub fn regcred_from(&self, i: usize) -> crate::regcred::RegCred {
        let mut rc = self.regcred.clone();
        let n = rc.endpoints.len();
        rc.endpoints.rotate_left(i % n.max(1));
        rc
    }

    /// Stop every server.
    pub async fn shutdown(self) {
        for s in self.servers {
            s.shutdown().await;
        }
    }
}

/// `n` member identities named `{tag}0`, `{tag}1`, … for a group's tests,
/// with random IDs and endpoints `127.0.0.1:21000+i` (never listened on).
/// They share four fast 1024-bit keys: the registry tells members apart
/// by ID, so distinct IDs need not have distinct keys.
pub fn members(tag: &str, n: usize) -> Vec<crate::client::NodeIdentity> {
    let keys = super::keys::generate_keys(4, 1024, super::keys::KeyGen::Fast, 2, &|| {})
        .expect("fast 1024-bit test keys");
    (0..n)
        .map(|i| {
            crate::client::NodeIdentity::from_keys(
                &format!("{tag}{i}"),
                crate::wire::NodeId::random(),
                keys[i % 2].clone(),
                keys[2 + i % 2].clone(),
                vec![format!("127.0.0.1:{}", 21000 + i)],
            )
            .expect("a member identity from valid keys")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_dbname_raw_replaces_only_the_database() {
        assert_eq!(
            with_dbname_raw("postgres://u:p@h:1/a?sslmode=disable", "b"),
            "postgres://u:p@h:1/b?sslmode=disable"
        );
        assert_eq!(
            with_dbname_raw("postgres://u:p@h:1", "b"),
            "postgres://u:p@h:1/b"
        );
    }
}
