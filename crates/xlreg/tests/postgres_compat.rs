//! What running on a PostgreSQL-compatible engine needs from the store,
//! on real PostgreSQL: held GetClusters complete without LISTEN/NOTIFY
//! (`xlreg_listen=off`: the servers poll the watched clusters), and a
//! transaction that loses to a serialization failure (`40001`) or a
//! deadlock (`40P01`) is run again, a bounded number of times.
//!
//! Each test makes its own database (`xlreg::testing::postgres::TestDb`).
//! Without `XLREG_TEST_POSTGRES` they print `SKIPPED:` and pass, unless
//! `XLREG_REQUIRE_POSTGRES=1` (CI), where they fail.

mod common;

use std::time::{Duration, Instant};

use common::registry::{connect, create, held, join, rec};
use xlreg::registry::postgres::DbUrl;
use xlreg::registry::{get_cluster_held, BackendError, BackendExt, DeleteByName, Policy};
use xlreg::testing::postgres::TestDb;
use xlreg::wire::Which;

const POLL: Duration = Duration::from_millis(50);

/// The test database's URL with LISTEN off and a 50 ms poll.
fn polling_url(db: &TestDb) -> DbUrl {
    let raw = db.raw_url();
    let sep = if raw.contains('?') { '&' } else { '?' };
    DbUrl::parse(&format!(
        "{raw}{sep}xlreg_listen=off&xlreg_poll_ms={}",
        POLL.as_millis()
    ))
    .unwrap()
}

/// A plain connection to the test database, for setup and checks.
async fn sql(db: &TestDb) -> tokio_postgres::Client {
    let (client, conn) = db
        .url()
        .config()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_listen_off_a_get_held_on_a_completes_by_polling_after_the_last_join_on_b() {
    let Some(db) = TestDb::create("poll_held").await else {
        return;
    };
    let url = polling_url(&db);
    let (a, b) = (
        connect(&url, Policy::default()).await,
        connect(&url, Policy::default()).await,
    );
    assert!(
        a.is_listening() && b.is_listening(),
        "polling connections up"
    );
    let c = a.call(create(b"polled", 3)).await.unwrap().id;
    for i in 0..2 {
        a.call(join(c, rec(i))).await.unwrap();
    }
    let a2 = a.clone();
    let waiting = tokio::spawn(async move {
        let m = get_cluster_held(&*a2, &held(c, Duration::from_secs(20))).await;
        (m, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "held while a member is missing");
    // No LISTEN anywhere: each server's watching connection has only
    // ever polled.
    let client = sql(&db).await;
    let rows = client
        .query(
            "SELECT query FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
            &[&db.name(), &xlreg::registry::postgres::APPLICATION_NAME],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "one watching connection per server");
    for r in &rows {
        let q: &str = r.get(0);
        assert!(!q.contains("LISTEN") && q.contains("xlreg_members"), "{q}");
    }
    b.call(join(c, rec(2))).await.unwrap();
    let joined = Instant::now();
    let (m, answered) = waiting.await.unwrap();
    let m = m.unwrap();
    assert!(m.complete, "complete after the last join");
    assert_eq!(m.selection.which, Which(0b111));
    let lag = answered.saturating_duration_since(joined);
    assert!(
        lag < POLL * 2 + Duration::from_millis(500),
        "answered {lag:?} after the join, polling every {POLL:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_listen_off_a_delete_on_b_ends_a_get_held_on_a() {
    let Some(db) = TestDb::create("poll_delete").await else {
        return;
    };
    let url = polling_url(&db);
    let (a, b) = (
        connect(&url, Policy::default()).await,
        connect(&url, Policy::default()).await,
    );
    let c = a.call(create(b"doomed", 3)).await.unwrap().id;
    a.call(join(c, rec(0))).await.unwrap();
    let a2 = a.clone();
    let started = Instant::now();
    let waiting =
        tokio::spawn(
            async move { get_cluster_held(&*a2, &held(c, Duration::from_secs(20))).await },
        );
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.call(DeleteByName(b"doomed".to_vec())).await.unwrap();
    let r = waiting.await.unwrap();
    assert!(
        matches!(&r, Err(BackendError::Rule(_))),
        "the held request learns the cluster is gone: {r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the poll, not the 20 s hold: {:?}",
        started.elapsed()
    );
}

/// A trigger that makes the first `fails` member inserts fail with
/// SQLSTATE `code`, counting every insert attempt in a sequence (a
/// sequence is not rolled back with the transaction).
async fn fail_member_inserts(db: &TestDb, code: &str, fails: i64) -> tokio_postgres::Client {
    let client = sql(db).await;
    client
        .batch_execute(&format!(
            "CREATE SEQUENCE xlreg_test_attempts;
             CREATE FUNCTION xlreg_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF nextval('xlreg_test_attempts') <= {fails} THEN
                     RAISE EXCEPTION 'injected failure' USING ERRCODE = '{code}';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER xlreg_test_fail BEFORE INSERT ON xlreg_members
                 FOR EACH ROW EXECUTE FUNCTION xlreg_test_fail();"
        ))
        .await
        .unwrap();
    client
}

async fn attempts(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT last_value FROM xlreg_test_attempts", &[])
        .await
        .unwrap()
        .get(0)
}

async fn members(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM xlreg_members", &[])
        .await
        .unwrap()
        .get(0)
}

async fn retried_until_it_commits(code: &str) {
    let Some(db) = TestDb::create(&format!("retry_{code}")).await else {
        return;
    };
    let a = connect(db.url(), Policy::default()).await;
    let c = a.call(create(b"contended", 4)).await.unwrap().id;
    let client = fail_member_inserts(&db, code, 3).await;
    let joined = a.call(join(c, rec(0))).await;
    assert!(joined.is_ok(), "acknowledged after 3 failures: {joined:?}");
    assert_eq!(
        attempts(&client).await,
        4,
        "3 failed attempts, then one commit"
    );
    assert_eq!(members(&client).await, 1, "the member is stored once");
}

#[tokio::test]
async fn a_join_that_meets_three_serialization_failures_is_retried_and_commits() {
    retried_until_it_commits("40001").await;
}

#[tokio::test]
async fn a_join_that_meets_three_deadlocks_is_retried_and_commits() {
    retried_until_it_commits("40P01").await;
}

#[tokio::test]
async fn endless_serialization_failures_end_in_a_storage_error_after_bounded_retries() {
    let Some(db) = TestDb::create("retry_forever").await else {
        return;
    };
    let a = connect(db.url(), Policy::default()).await;
    let c = a.call(create(b"hopeless", 4)).await.unwrap().id;
    let client = fail_member_inserts(&db, "40001", i64::MAX).await;
    let started = Instant::now();
    let r = a.call(join(c, rec(0))).await;
    let took = started.elapsed();
    assert!(
        matches!(&r, Err(BackendError::Storage(_))),
        "a storage failure, nothing applied: {r:?}"
    );
    let n = attempts(&client).await;
    assert!(
        (2..=20).contains(&n),
        "retried a bounded number of times: {n}"
    );
    assert_eq!(members(&client).await, 0, "nothing was applied");
    // The backoff grows: the retries took some time, but not long.
    assert!(
        took > Duration::from_millis(100) && took < Duration::from_secs(10),
        "{took:?} for {n} attempts"
    );
}

/// Everything NOTIFYed on the registry's channel from now on.
async fn eavesdrop(db: &TestDb) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (client, mut conn) = db
        .url()
        .config()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for the LISTEN to complete.
    let pump = tokio::spawn(async move {
        while let Some(Ok(msg)) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = msg {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {}", xlreg::registry::postgres::CHANNEL))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _keep = client;
        let _ = pump.await;
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_notify_off_joins_and_deletes_announce_nothing_and_held_gets_still_complete() {
    let Some(db) = TestDb::create("notify_off").await else {
        return;
    };
    let raw = db.raw_url();
    let sep = if raw.contains('?') { '&' } else { '?' };
    let quiet = DbUrl::parse(&format!(
        "{raw}{sep}xlreg_listen=off&xlreg_notify=off&xlreg_poll_ms={}",
        POLL.as_millis()
    ))
    .unwrap();
    let (a, b) = (
        connect(&quiet, Policy::default()).await,
        connect(&quiet, Policy::default()).await,
    );
    let mut heard = eavesdrop(&db).await;
    let c = a.call(create(b"quiet", 2)).await.unwrap().id;
    a.call(join(c, rec(0))).await.unwrap();
    let a2 = a.clone();
    let waiting =
        tokio::spawn(
            async move { get_cluster_held(&*a2, &held(c, Duration::from_secs(20))).await },
        );
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.call(join(c, rec(1))).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("completed by polling, not at the 20 s hold")
        .unwrap()
        .unwrap();
    assert!(m.complete);
    b.call(DeleteByName(b"quiet".to_vec())).await.unwrap();
    // The listener works: a server with NOTIFY on is heard.
    let loud = connect(
        &DbUrl::parse(&format!("{raw}{sep}xlreg_notify=on")).unwrap(),
        Policy::default(),
    )
    .await;
    let c2 = loud.call(create(b"loud", 2)).await.unwrap().id;
    loud.call(join(c2, rec(5))).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), heard.recv())
        .await
        .expect("the NOTIFY-on join is heard")
        .unwrap();
    assert!(
        first.starts_with(&c2.to_hex()),
        "nothing of the quiet cluster was announced before it: {first}"
    );
}
