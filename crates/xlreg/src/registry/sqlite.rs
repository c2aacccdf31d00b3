//! The embedded SQLite store: clusters, memberships and known IDs survive
//! restarts and `kill -9` (the Go server keeps them only in memory).
//!
//! WAL journal with `synchronous=FULL`: a transaction is on disk when
//! `commit` returns, and a reply is sent only after that. The schema's
//! primary keys and UNIQUE constraints repeat the registry's rules, so even
//! a bug above could not store one slot twice. Whether loaded rows are
//! acceptable is decided by the rules ([`Registry::restore`]); this file
//! only checks that they are well-formed.
//!
//! [`Registry::restore`]: super::Registry::restore

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::rules::{Change, IdOwner, MemberRecord};
use super::store::{Store, StoreCause, StoreError};
use super::values::{Actor, ChangeKind, HistoryEntry, HISTORY_LEN};
use crate::wire::NodeId;

const SCHEMA_VERSION: i64 = 3;

/// Schema 2 to 3: clusters that change (a version and an owner per
/// cluster, and the history table created with the schema). Clusters
/// stored before it get version 1 and no owner.
const UPGRADE_2_TO_3: &str = "BEGIN;
     ALTER TABLE clusters ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
     ALTER TABLE clusters ADD COLUMN owner BLOB;
     UPDATE meta SET value = 3 WHERE key = 'schema_version';
     COMMIT;";

/// The SQLite database of one registry.
pub struct SqliteStore {
    conn: Connection,
    path: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({})", self.path)
    }
}

impl SqliteStore {
    /// Open (or create) the database file at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let name = path.display().to_string();
        let conn =
            Connection::open(path).map_err(|e| StoreError::new(name.clone(), "cannot open", e))?;
        Self::init(conn, name, true)
    }

    /// An SQLite database in memory (tests of the schema's constraints).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory()
            .map_err(|e| StoreError::new(":memory:", "cannot open", e))?;
        Self::init(conn, ":memory:".into(), false)
    }

    fn err(&self, what: &str, e: impl Into<StoreCause>) -> StoreError {
        StoreError::new(self.path.clone(), what, e)
    }

    fn malformed(&self, what: String) -> StoreError {
        self.err("inconsistent data", StoreCause::Malformed(what))
    }

    fn init(conn: Connection, path: String, on_disk: bool) -> Result<SqliteStore, StoreError> {
        let s = SqliteStore { conn, path };
        if on_disk {
            let ok: String = s
                .conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(|e| s.err("not a usable SQLite database", e))?;
            if ok != "ok" {
                return Err(s.err("integrity check failed", StoreCause::Malformed(ok)));
            }
            let mode: String = s
                .conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(|e| s.err("cannot enable WAL", e))?;
            if mode.to_lowercase() != "wal" {
                return Err(s.err(
                    "cannot enable WAL",
                    StoreCause::Malformed(format!("journal mode stays {mode}")),
                ));
            }
        }
        s.conn
            .execute_batch(
                "PRAGMA synchronous=FULL;
                 PRAGMA foreign_keys=ON;
                 CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS ids(
                     id BLOB PRIMARY KEY,
                     kind INTEGER NOT NULL,
                     sig_sha256 BLOB) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS clusters(
                     id BLOB PRIMARY KEY,
                     name BLOB NOT NULL UNIQUE,
                     attrs INTEGER NOT NULL,
                     max_size INTEGER NOT NULL,
                     ep_count INTEGER NOT NULL,
                     ttl_ms INTEGER,
                     created_ms INTEGER NOT NULL DEFAULT 0,
                     last_active_ms INTEGER NOT NULL DEFAULT 0,
                     version INTEGER NOT NULL DEFAULT 1,
                     owner BLOB) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS members(
                     cluster_id BLOB NOT NULL REFERENCES clusters(id),
                     idx INTEGER NOT NULL,
                     member_id BLOB NOT NULL,
                     name BLOB NOT NULL,
                     token BLOB NOT NULL,
                     PRIMARY KEY(cluster_id, idx),
                     UNIQUE(cluster_id, member_id),
                     UNIQUE(cluster_id, name)) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS history(
                     cluster_id BLOB NOT NULL REFERENCES clusters(id),
                     version INTEGER NOT NULL,
                     at_ms INTEGER NOT NULL,
                     kind TEXT NOT NULL,
                     detail TEXT NOT NULL,
                     by_whom TEXT NOT NULL,
                     PRIMARY KEY(cluster_id, version)) WITHOUT ROWID;",
            )
            .map_err(|e| s.err("cannot create schema", e))?;
        s.check_durability(on_disk)?;
        let v: Option<i64> = s
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key='schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| s.err("cannot read schema version", e))?;
        match v {
            None => {
                s.conn
                    .execute(
                        "INSERT INTO meta(key, value) VALUES('schema_version', ?1)",
                        [SCHEMA_VERSION],
                    )
                    .map_err(|e| s.err("cannot write schema version", e))?;
            }
            Some(SCHEMA_VERSION) => {}
            // Version 1 had no TTLs: add the columns (NULL TTL = the
            // server's default; activity 0 = "now" at load).
            Some(1) => {
                s.conn
                    .execute_batch(
                        "BEGIN;
                         ALTER TABLE clusters ADD COLUMN ttl_ms INTEGER;
                         ALTER TABLE clusters ADD COLUMN created_ms INTEGER NOT NULL DEFAULT 0;
                         ALTER TABLE clusters ADD COLUMN last_active_ms INTEGER NOT NULL DEFAULT 0;
                         UPDATE meta SET value = 2 WHERE key = 'schema_version';
                         COMMIT;",
                    )
                    .map_err(|e| s.err("cannot upgrade schema 1 to 2", e))?;
                s.conn
                    .execute_batch(UPGRADE_2_TO_3)
                    .map_err(|e| s.err("cannot upgrade schema 2 to 3", e))?;
            }
            Some(2) => {
                s.conn
                    .execute_batch(UPGRADE_2_TO_3)
                    .map_err(|e| s.err("cannot upgrade schema 2 to 3", e))?;
            }
            Some(other) => {
                return Err(s.err(
                    "unsupported schema",
                    StoreCause::Malformed(format!(
                        "version {other}, this xlreg supports {SCHEMA_VERSION}"
                    )),
                ))
            }
        }
        Ok(s)
    }

    /// Read the durability settings back from this connection (the one
    /// every commit uses): `synchronous` must be FULL (2) and, on disk, the
    /// journal WAL. Logged at info level, so an operator (and a test) can
    /// see what the running server really uses.
    fn check_durability(&self, on_disk: bool) -> Result<(), StoreError> {
        let sync: i64 = self
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .map_err(|e| self.err("cannot read PRAGMA synchronous", e))?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(|e| self.err("cannot read PRAGMA journal_mode", e))?;
        if sync != 2 || (on_disk && !mode.eq_ignore_ascii_case("wal")) {
            return Err(self.malformed(format!(
                "durability settings did not take: synchronous={sync}, journal_mode={mode}"
            )));
        }
        tracing::info!(
            path = %self.path,
            journal_mode = %mode,
            synchronous = sync,
            "registry database opened"
        );
        Ok(())
    }

    /// Path of the database (`:memory:` for in-memory stores).
    pub fn path(&self) -> &str {
        &self.path
    }

    fn id_of(&self, raw: Vec<u8>, what: &str) -> Result<NodeId, StoreError> {
        NodeId::from_bytes(&raw)
            .map_err(|_| self.malformed(format!("{what} of {} bytes", raw.len())))
    }

    /// Counts of clusters, members and IDs (for logs and tests).
    pub fn counts(&self) -> Result<(u64, u64, u64), StoreError> {
        let q = |sql: &str| {
            self.conn
                .query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|v| v as u64)
                .map_err(|e| self.err("count", e))
        };
        Ok((
            q("SELECT COUNT(*) FROM clusters")?,
            q("SELECT COUNT(*) FROM members")?,
            q("SELECT COUNT(*) FROM ids")?,
        ))
    }
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Vec<Change>, StoreError> {
        let mut out = Vec::new();
        let mut q = self
            .conn
            .prepare("SELECT id, kind, sig_sha256 FROM ids")
            .map_err(|e| self.err("read ids", e))?;
        let rows = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                ))
            })
            .map_err(|e| self.err("read ids", e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err("read ids", e))?;
        drop(q);
        for (id, kind, sig) in rows {
            let id = self.id_of(id, "ID")?;
            let owner = match (kind, sig) {
                (1, _) => IdOwner::Cluster,
                (2, Some(h)) if h.len() == 32 => IdOwner::Member(h.try_into().expect("32")),
                _ => return Err(self.malformed(format!("ID {id} has an invalid owner record"))),
            };
            out.push(Change::NewId { id, owner });
        }

        let mut q = self
            .conn
            .prepare("SELECT id, name, attrs, max_size, ep_count, ttl_ms, created_ms, last_active_ms, version, owner FROM clusters")
            .map_err(|e| self.err("read clusters", e))?;
        let clusters = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                    (r.get::<_, i64>(8)?, r.get::<_, Option<Vec<u8>>>(9)?),
                ))
            })
            .map_err(|e| self.err("read clusters", e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err("read clusters", e))?;
        drop(q);
        let mut mq = self
            .conn
            .prepare(
                "SELECT idx, member_id, name, token FROM members WHERE cluster_id = ?1 ORDER BY idx",
            )
            .map_err(|e| self.err("read members", e))?;
        let mut hq = self
            .conn
            .prepare(
                "SELECT version, at_ms, kind, detail, by_whom FROM history WHERE cluster_id = ?1 ORDER BY version",
            )
            .map_err(|e| self.err("read history", e))?;
        for (
            id,
            name,
            attrs,
            max_size,
            ep_count,
            ttl_ms,
            created_ms,
            last_active_ms,
            (version, owner),
        ) in clusters
        {
            let cid = self.id_of(id.clone(), "cluster ID")?;
            let (Ok(max_size), Ok(ep_count)) = (u32::try_from(max_size), u32::try_from(ep_count))
            else {
                return Err(self.malformed(format!(
                    "cluster {cid} has size {max_size} / endpoint count {ep_count}"
                )));
            };
            out.push(Change::NewCluster {
                id: cid,
                name: name.into(),
                attrs: attrs as u64,
                max_size,
                ep_count,
                ttl_ms: ttl_ms.map(|t| t.max(0) as u64),
                created_ms: created_ms.max(0) as u64,
                last_active_ms: last_active_ms.max(0) as u64,
                version: version.max(0) as u64,
                owner: owner.map(|o| self.id_of(o, "cluster owner")).transpose()?,
            });
            let rows = mq
                .query_map([&id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                })
                .map_err(|e| self.err("read members", e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err("read members", e))?;
            for (idx, mid, mname, token) in rows {
                let index = usize::try_from(idx).map_err(|_| {
                    self.malformed(format!("cluster {cid}: member slot {idx} out of sequence"))
                })?;
                out.push(Change::NewMember {
                    cluster: cid,
                    index,
                    record: MemberRecord {
                        id: self.id_of(mid, "member ID")?,
                        name: mname.into(),
                        token: token.into(),
                    },
                });
            }
            let rows = hq
                .query_map([&id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(|e| self.err("read history", e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err("read history", e))?;
            for (version, at_ms, kind, detail, by) in rows {
                let (Some(kind), Some(by)) = (ChangeKind::parse(&kind), Actor::parse(&by)) else {
                    return Err(self.malformed(format!(
                        "cluster {cid}: history entry {version} of kind {kind:?} by {by:?}"
                    )));
                };
                out.push(Change::Logged {
                    cluster: cid,
                    entry: HistoryEntry {
                        version: version.max(0) as u64,
                        at_ms: at_ms.max(0) as u64,
                        kind,
                        detail: detail.into(),
                        by,
                    },
                });
            }
        }
        Ok(out)
    }

    fn append(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let path = self.path.as_str();
        let e = |what: &str, err: rusqlite::Error| StoreError::new(path, what, err);
        // An UPDATE/DELETE of one member's slot must touch exactly that row.
        let one_slot = |what: &str, n: usize, cluster: &NodeId, index: usize| {
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::new(
                    path,
                    what,
                    StoreCause::Malformed(format!("slot {index} of {cluster} not found")),
                ))
            }
        };
        let tx = self.conn.transaction().map_err(|x| e("begin", x))?;
        // Statements are parsed once per connection, not once per change.
        fn exec(
            tx: &rusqlite::Transaction<'_>,
            sql: &str,
            params: impl rusqlite::Params,
        ) -> rusqlite::Result<usize> {
            tx.prepare_cached(sql)?.execute(params)
        }
        for ch in changes {
            match ch {
                Change::NewId { id, owner } => {
                    let (kind, sig): (i64, Option<&[u8]>) = match owner {
                        IdOwner::Registry => continue,
                        IdOwner::Cluster => (1, None),
                        IdOwner::Member(h) => (2, Some(h)),
                    };
                    exec(
                        &tx,
                        "INSERT INTO ids(id, kind, sig_sha256) VALUES(?1, ?2, ?3)",
                        params![id.as_bytes(), kind, sig],
                    )
                    .map_err(|x| e("insert id", x))?;
                }
                Change::NewCluster {
                    id,
                    name,
                    attrs,
                    max_size,
                    ep_count,
                    ttl_ms,
                    created_ms,
                    last_active_ms,
                    version,
                    owner,
                } => {
                    exec(&tx,
                        "INSERT INTO clusters(id, name, attrs, max_size, ep_count, ttl_ms, created_ms, last_active_ms, version, owner) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        params![id.as_bytes(), &name[..], *attrs as i64, max_size, ep_count, ttl_ms.map(|t| t.min(i64::MAX as u64) as i64), *created_ms as i64, *last_active_ms as i64, *version as i64, owner.as_ref().map(|o| o.as_bytes())],
                    )
                    .map_err(|x| e("insert cluster", x))?;
                }
                Change::DeleteCluster { id } => {
                    // A cluster has at most 64 members and HISTORY_LEN
                    // history rows: bounded work.
                    exec(
                        &tx,
                        "DELETE FROM members WHERE cluster_id = ?1",
                        [id.as_bytes()],
                    )
                    .map_err(|x| e("delete members", x))?;
                    exec(
                        &tx,
                        "DELETE FROM history WHERE cluster_id = ?1",
                        [id.as_bytes()],
                    )
                    .map_err(|x| e("delete history", x))?;
                    exec(&tx, "DELETE FROM clusters WHERE id = ?1", [id.as_bytes()])
                        .map_err(|x| e("delete cluster", x))?;
                    exec(
                        &tx,
                        "DELETE FROM ids WHERE id = ?1 AND kind = 1",
                        [id.as_bytes()],
                    )
                    .map_err(|x| e("delete cluster id", x))?;
                }
                Change::Touch { id, at_ms } => {
                    exec(&tx,
                        "UPDATE clusters SET last_active_ms = MAX(last_active_ms, ?2) WHERE id = ?1",
                        params![id.as_bytes(), *at_ms as i64],
                    )
                    .map_err(|x| e("touch cluster", x))?;
                }
                Change::NewMember {
                    cluster,
                    index,
                    record,
                } => {
                    exec(&tx,
                        "INSERT INTO members(cluster_id, idx, member_id, name, token) VALUES(?1, ?2, ?3, ?4, ?5)",
                        params![cluster.as_bytes(), *index as i64, record.id.as_bytes(), &record.name[..], &record.token[..]],
                    )
                    .map_err(|x| e("insert member", x))?;
                }
                Change::ReplaceMember {
                    cluster,
                    index,
                    record,
                } => {
                    let n = exec(
                        &tx,
                            "UPDATE members SET token = ?3 WHERE cluster_id = ?1 AND idx = ?2 AND member_id = ?4",
                            params![cluster.as_bytes(), *index as i64, &record.token[..], record.id.as_bytes()],
                        )
                        .map_err(|x| e("update member", x))?;
                    one_slot("update member", n, cluster, *index)?;
                }
                Change::RemoveMember { cluster, index } => {
                    let n = exec(
                        &tx,
                        "DELETE FROM members WHERE cluster_id = ?1 AND idx = ?2",
                        params![cluster.as_bytes(), *index as i64],
                    )
                    .map_err(|x| e("remove member", x))?;
                    one_slot("remove member", n, cluster, *index)?;
                }
                Change::Resize { cluster, max_size } => {
                    exec(
                        &tx,
                        "UPDATE clusters SET max_size = ?2 WHERE id = ?1",
                        params![cluster.as_bytes(), max_size],
                    )
                    .map_err(|x| e("resize cluster", x))?;
                }
                Change::Logged { cluster, entry } => {
                    let v = entry.version as i64;
                    exec(&tx,
                        "INSERT INTO history(cluster_id, version, at_ms, kind, detail, by_whom) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                        params![cluster.as_bytes(), v, entry.at_ms as i64, entry.kind.as_str(), &*entry.detail, entry.by.as_str()],
                    )
                    .map_err(|x| e("insert history", x))?;
                    exec(
                        &tx,
                        "UPDATE clusters SET version = MAX(version, ?2) WHERE id = ?1",
                        params![cluster.as_bytes(), v],
                    )
                    .map_err(|x| e("update version", x))?;
                    exec(
                        &tx,
                        "DELETE FROM history WHERE cluster_id = ?1 AND version <= ?2",
                        params![cluster.as_bytes(), v - HISTORY_LEN as i64],
                    )
                    .map_err(|x| e("trim history", x))?;
                }
            }
        }
        tx.commit().map_err(|x| e("commit", x))
    }

    fn waits_for_device(&self) -> bool {
        true
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM meta", [], |r| r.get::<_, i64>(0))
            .map(|_| ())
            .map_err(|e| self.err("ping", e))
    }

    fn location(&self) -> &str {
        &self.path
    }
}

/// Where the database lives inside a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("registry.db")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Registry, RegistryService};
    use crate::wire::Which;

    fn load(st: &mut SqliteStore, own: NodeId) -> Registry {
        Registry::restore(own, st.load().unwrap()).unwrap()
    }

    fn rec(id: u8) -> MemberRecord {
        MemberRecord {
            id: NodeId::from_bytes(&[id; 20]).unwrap(),
            name: format!("m{id}").into_bytes().into(),
            token: vec![id; 30].into(),
        }
    }

    #[test]
    fn changes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let own = NodeId::from_bytes(&[0xee; 20]).unwrap();
        let path = db_path(dir.path());
        let c;
        {
            let mut st = SqliteStore::open(&path).unwrap();
            let mut reg = load(&mut st, own);
            reg.register(Some(NodeId::from_bytes(&[1; 20]).unwrap()), [7; 32])
                .unwrap();
            c = reg.create(b"alpha", 3, 9, 2).unwrap().id;
            reg.join(&c, rec(1), 2).unwrap();
            reg.join(&c, rec(2), 2).unwrap();
            st.append(reg.pending()).unwrap();
            reg.commit();
        }
        let mut st = SqliteStore::open(&path).unwrap();
        let reg = load(&mut st, own);
        let cl = reg.cluster(&c).unwrap();
        assert_eq!((cl.max_size, cl.attrs, cl.ep_count, cl.len()), (3, 9, 2, 2));
        assert_eq!(cl.member(1), Some(&rec(2)));
        assert_eq!(
            reg.id_owner(&NodeId::from_bytes(&[1; 20]).unwrap()),
            Some(IdOwner::Member([7; 32]))
        );
        let all = crate::registry::GetCluster {
            cluster: crate::registry::ClusterTarget::Id(c),
            which: Which::ALL,
            budget: 1 << 20,
            hold: std::time::Duration::ZERO,
        };
        assert_eq!(reg.members(&all).unwrap().selection.which, Which(3));
        assert_eq!(st.counts().unwrap(), (1, 2, 2));
    }

    #[test]
    fn a_slot_cannot_be_stored_twice() {
        let mut st = SqliteStore::in_memory().unwrap();
        let own = NodeId::from_bytes(&[0xee; 20]).unwrap();
        let mut reg = load(&mut st, own);
        let c = reg.create(b"alpha", 3, 0, 1).unwrap().id;
        reg.join(&c, rec(1), 1).unwrap();
        st.append(reg.pending()).unwrap();
        reg.commit();
        let dup = Change::NewMember {
            cluster: c,
            index: 0,
            record: rec(2),
        };
        assert!(st.append(&[dup]).is_err());
    }

    #[test]
    fn garbage_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(dir.path());
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let e = SqliteStore::open(&path).unwrap_err().to_string();
        assert!(e.contains("registry.db"), "{e}");
        assert!(
            std::fs::read(&path).unwrap().iter().all(|&b| b == 0x5a),
            "file untouched"
        );
    }

    #[test]
    fn rows_the_rules_refuse_are_refused_on_load_with_the_path_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(dir.path());
        let own = NodeId::from_bytes(&[0xee; 20]).unwrap();
        let cid = NodeId::from_bytes(&[0xc1; 20]).unwrap();
        drop(SqliteStore::open(&path).unwrap());
        // Well-formed rows, but 1024 endpoints per member where the rules
        // allow 16 (the old loader accepted them).
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO ids(id, kind, sig_sha256) VALUES(?1, 1, NULL)",
            [cid.as_bytes()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO clusters(id, name, attrs, max_size, ep_count) VALUES(?1, X'63', 0, 4, 1024)",
            [cid.as_bytes()],
        )
        .unwrap();
        drop(conn);
        let st = SqliteStore::open(&path).unwrap();
        let e = RegistryService::start(Box::new(st), own, Default::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("registry database {}: inconsistent data", path.display())
        );
        let cause = std::error::Error::source(&e).unwrap().to_string();
        assert!(cause.contains(&cid.to_string()), "{cause}");
        assert!(cause.contains("endpoint count 1024"), "{cause}");
        assert!(matches!(e.cause, StoreCause::Restore(_)));
    }

    #[test]
    fn a_failed_open_keeps_the_sqlite_error_as_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(dir.path());
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let e = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(e.cause, StoreCause::Sqlite(_)), "{e:?}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
