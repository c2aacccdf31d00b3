//! The PostgreSQL schema, created and migrated by the server itself.
//!
//! Migrations are numbered and append-only: each runs once, in order, in
//! one transaction under an advisory lock, so several servers starting at
//! once against an empty database do not race. A database migrated by a
//! newer xlreg is refused with its version number.
//!
//! The constraints repeat the registry's rules so that even a bug above
//! could not break them: one owner per ID, one registry identity, one
//! cluster per name, one member per slot, per member ID and per member
//! name, and no slot at or beyond the cluster's size.

use tokio_postgres::Client;

/// Arbitrary key of the advisory lock taken while migrating.
const MIGRATION_LOCK: i64 = 0x786c_7265_675f_6d31; // "xlreg_m1"

/// The NOTIFY channel a committed change of a cluster is announced on;
/// the payload is `HEXCLUSTERID:VERSION` (`HEXCLUSTERID:0` for a cluster
/// deleted or expired; before migration 5, `HEXCLUSTERID:MEMBERCOUNT` for
/// a join).
pub const CHANNEL: &str = "xlreg_members";

/// Every migration, in order; index + 1 is its version.
pub const MIGRATIONS: &[&str] = &[
    // 1: ids, clusters, members.
    "CREATE TABLE xlreg_ids(
         id bytea PRIMARY KEY,
         -- 0 the registry, 1 a cluster, 2 a member (with its sig key hash)
         kind smallint NOT NULL CHECK (kind IN (0, 1, 2)),
         sig_sha256 bytea CHECK (octet_length(sig_sha256) = 32),
         CHECK ((kind = 2) = (sig_sha256 IS NOT NULL)));
     CREATE UNIQUE INDEX xlreg_one_registry ON xlreg_ids(kind) WHERE kind = 0;
     CREATE TABLE xlreg_clusters(
         id bytea PRIMARY KEY REFERENCES xlreg_ids(id),
         name bytea NOT NULL UNIQUE CHECK (octet_length(name) BETWEEN 1 AND 256),
         attrs bigint NOT NULL,
         max_size integer NOT NULL CHECK (max_size BETWEEN 2 AND 64),
         ep_count integer NOT NULL CHECK (ep_count BETWEEN 1 AND 16));
     CREATE TABLE xlreg_members(
         cluster_id bytea NOT NULL REFERENCES xlreg_clusters(id),
         idx integer NOT NULL CHECK (idx BETWEEN 0 AND 63),
         member_id bytea NOT NULL,
         name bytea NOT NULL,
         token bytea NOT NULL,
         PRIMARY KEY (cluster_id, idx),
         UNIQUE (cluster_id, member_id),
         UNIQUE (cluster_id, name));
     CREATE FUNCTION xlreg_member_fits() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF NEW.idx >= (SELECT max_size FROM xlreg_clusters WHERE id = NEW.cluster_id) THEN
             RAISE EXCEPTION 'cluster is full: slot % beyond its size', NEW.idx
                 USING ERRCODE = 'check_violation';
         END IF;
         RETURN NEW;
     END $$;
     CREATE TRIGGER xlreg_member_fits BEFORE INSERT OR UPDATE ON xlreg_members
         FOR EACH ROW EXECUTE FUNCTION xlreg_member_fits();
     -- Every new member is announced at commit: HEXCLUSTERID:MEMBERCOUNT.
     CREATE FUNCTION xlreg_member_notify() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         PERFORM pg_notify('xlreg_members', encode(NEW.cluster_id, 'hex') || ':' || (NEW.idx + 1));
         RETURN NULL;
     END $$;
     CREATE TRIGGER xlreg_member_notify AFTER INSERT ON xlreg_members
         FOR EACH ROW EXECUTE FUNCTION xlreg_member_notify();",
    // 2: cluster TTLs (creation time, last activity, requested TTL).
    "ALTER TABLE xlreg_clusters
         ADD COLUMN ttl_ms bigint CHECK (ttl_ms > 0),
         ADD COLUMN created_ms bigint NOT NULL DEFAULT 0,
         ADD COLUMN last_active_ms bigint NOT NULL DEFAULT 0;",
    // 3: NOTIFY optional: a session started with `-c xlreg.notify=off`
    // (`xlreg_notify=off` in the URL) does not announce joins, for engines
    // where pg_notify is an error.
    "CREATE OR REPLACE FUNCTION xlreg_member_notify() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF coalesce(current_setting('xlreg.notify', true), '') <> 'off' THEN
             PERFORM pg_notify('xlreg_members', encode(NEW.cluster_id, 'hex') || ':' || (NEW.idx + 1));
         END IF;
         RETURN NULL;
     END $$;",
    // 4: expiry on PostgreSQL. Clusters stored before activity was (0)
    // count as active now, as the in-process store counts them at start;
    // listings of the most recently active and the sweep read by activity.
    "UPDATE xlreg_clusters
         SET last_active_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint
         WHERE last_active_ms = 0;
     CREATE INDEX xlreg_clusters_last_active ON xlreg_clusters(last_active_ms);",
    // 5: clusters that change. A version and an owner per cluster (rows
    // stored before: version 1, no owner), the last changes per cluster
    // (trimmed by the writer), and one announcement per committed change
    // (HEXCLUSTERID:VERSION) from the history row every change writes — a
    // join, a re-join, a leave, an evict, a resize — instead of the member
    // trigger, which saw only joins.
    "ALTER TABLE xlreg_clusters
         ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
         ADD COLUMN owner bytea;
     CREATE TABLE xlreg_history(
         cluster_id bytea NOT NULL REFERENCES xlreg_clusters(id),
         version bigint NOT NULL,
         at_ms bigint NOT NULL,
         kind text NOT NULL
             CHECK (kind IN ('create', 'join', 'rejoin', 'leave', 'evict', 'resize')),
         detail text NOT NULL,
         by_whom text NOT NULL CHECK (by_whom IN ('owner', 'admin', 'member')),
         PRIMARY KEY (cluster_id, version));
     CREATE FUNCTION xlreg_history_notify() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF coalesce(current_setting('xlreg.notify', true), '') <> 'off' THEN
             PERFORM pg_notify('xlreg_members', encode(NEW.cluster_id, 'hex') || ':' || NEW.version);
         END IF;
         RETURN NULL;
     END $$;
     CREATE TRIGGER xlreg_history_notify AFTER INSERT ON xlreg_history
         FOR EACH ROW EXECUTE FUNCTION xlreg_history_notify();
     DROP TRIGGER xlreg_member_notify ON xlreg_members;",
];

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The database was migrated by a newer xlreg.
    #[error("database schema version {found} is newer than this xlreg supports ({supported})")]
    TooNew {
        /// Version in the database.
        found: i32,
        /// Newest version this build knows.
        supported: i32,
    },
    /// A statement failed.
    #[error("{what}: {err}")]
    Db {
        /// Which step.
        what: String,
        /// The database's error.
        err: tokio_postgres::Error,
    },
}

fn db(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SchemaError {
    let what = what.into();
    move |err| SchemaError::Db { what, err }
}

/// Apply every migration the database lacks; returns the version it is at.
pub async fn migrate(client: &mut Client) -> Result<i32, SchemaError> {
    let tx = client.transaction().await.map_err(db("begin migration"))?;
    // "already exists, skipping" notices are noise in the server log.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(db("set client_min_messages"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db("take the migration lock"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS xlreg_schema_migrations(
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(db("create xlreg_schema_migrations"))?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM xlreg_schema_migrations",
            &[],
        )
        .await
        .map_err(db("read the schema version"))?
        .get(0);
    let supported = MIGRATIONS.len() as i32;
    if found > supported {
        return Err(SchemaError::TooNew { found, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(sql)
            .await
            .map_err(db(format!("apply migration {version}")))?;
        tx.execute(
            "INSERT INTO xlreg_schema_migrations(version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(db(format!("record migration {version}")))?;
        tracing::info!(version, "applied database migration");
    }
    tx.commit().await.map_err(db("commit migration"))?;
    Ok(supported)
}
