//! The stores against real engines: one contract ([`contract`]) that every backend must keep,
//! run against SQLite in a temporary folder and against the real PostgreSQL on this machine,
//! and what only PostgreSQL has to survive ([`postgres`]: several nodes, dropped connections,
//! outages), and what only SQLite has to survive ([`sqlite`]: a counter gone stale). Each
//! PostgreSQL test gets a database of its own, created through
//! `CONFAB_TEST_DATABASE_URL` and dropped when the test ends (even when it fails), so tests run
//! in parallel without seeing each other.

mod contract;
mod postgres;
mod sqlite;

use std::io::Write;
use std::sync::Arc;

use confab::domain::{ClientId, DisplayName, Message, RoomName, User, UserId};
use confab::store::postgres::PostgresStore;
use confab::store::sqlite::SqliteStore;
use confab::store::{Appended, NewMessage, Store};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

const DATABASE_URL_VAR: &str = "CONFAB_TEST_DATABASE_URL";

/// A database of one test's own, dropped (with any connections still open to it) on drop.
pub(crate) struct TestDatabase {
    admin_url: String,
    name: String,
    pub(crate) url: String,
}

impl TestDatabase {
    /// A fresh, empty database, or `None` (after saying so loudly) when no server is configured
    /// outside CI. Under `CI=true` a missing server fails the test: nothing may be skipped there.
    pub(crate) async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var(DATABASE_URL_VAR) else {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("{DATABASE_URL_VAR} is not set, and CI=true forbids skipping");
            }
            // Written to the stderr handle, not with `eprintln!`, which the test harness
            // captures and hides for a test that passes. Once per binary is loud enough.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n!!! SKIPPING the PostgreSQL store tests: set {DATABASE_URL_VAR} \
                     (e.g. postgres://postgres@127.0.0.1:5432/postgres); scripts/test.sh sets it\n"
                );
            });
            return None;
        };
        let name = format!("confab_test_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to the admin database");
        admin
            .execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
        })
    }

    pub(crate) async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url)
            .await
            .expect("store connects")
    }

    /// An extra connection to the test database, for arranging what the store cannot.
    pub(crate) async fn connection(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Ends every session on the test database except the caller's, and waits until they are
    /// gone, as a database restart or an administrator would.
    pub(crate) async fn kill_connections(&self) -> i64 {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to the admin database");
        // The victims are chosen first (MATERIALIZED), then terminated: a terminate call in the
        // WHERE clause may run before the other conditions and hit every session on the server.
        let killed: i64 = sqlx::query_scalar(
            "WITH victims AS MATERIALIZED (
                 SELECT pid FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()
             )
             SELECT count(*) FILTER (WHERE terminated)
             FROM (SELECT pg_terminate_backend(pid, 5000) AS terminated FROM victims) AS t",
        )
        .bind(&self.name)
        .fetch_one(&mut admin)
        .await
        .expect("terminate backends");
        admin.close().await.ok();
        killed
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime (or while a failed test unwinds), where nothing can
        // be awaited: a thread with a runtime of its own does the clean-up and is waited for.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async {
                    let mut admin = PgConnection::connect(&admin_url).await?;
                    admin
                        .execute(AssertSqlSafe(format!(
                            r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                        )))
                        .await?;
                    admin.close().await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// `url` with its database (the path) replaced by `database`, keeping any query string.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

pub(crate) fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

pub(crate) fn user(name: &str) -> User {
    User {
        id: UserId::from_trusted(format!("user-{name}")),
        name: DisplayName::parse(name).unwrap(),
        guest: true,
    }
}

pub(crate) fn message(room_name: &str, who: &str, client_id: &str, ts: i64) -> NewMessage {
    NewMessage {
        room: room(room_name),
        id: format!("id-{room_name}-{who}-{client_id}"),
        ts,
        user: user(who),
        text: format!("{who} says {client_id}"),
        client_id: ClientId::parse(client_id.to_owned()).unwrap(),
        event: confab::domain::Event::Message,
        reply_to: None,
        moderator: false,
    }
}

pub(crate) fn stored(outcome: &Appended) -> &Message {
    match outcome {
        Appended::Stored(message) => message,
        Appended::Duplicate(message) => panic!("expected a new message, got duplicate {message:?}"),
        Appended::Refused(refusal) => panic!("expected a new message, got {refusal:?}"),
    }
}

pub(crate) fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

/// One engine under test, with what a test needs to arrange on it from outside the store.
pub(crate) enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Backend {
    /// Every backend this machine can run: SQLite always, PostgreSQL when configured (see
    /// [`TestDatabase::create`]). Each is fresh and empty.
    pub(crate) async fn all() -> Vec<Self> {
        let mut backends = vec![Self::Sqlite(tempfile::tempdir().expect("temporary folder"))];
        if let Some(db) = TestDatabase::create().await {
            backends.push(Self::Postgres(db));
        }
        backends
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// A store on this backend's data: opening it again after `close` is a restart.
    pub(crate) async fn open(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(dir) => {
                Arc::new(SqliteStore::open(dir.path()).await.expect("sqlite opens"))
            }
            Self::Postgres(db) => Arc::new(db.store().await),
        }
    }

    /// From now on, storing a message whose text is `text` fails inside the storing
    /// transaction (a trigger raises), as a full disk or a broken constraint would.
    pub(crate) async fn refuse_text(&self, text: &str) {
        match self {
            Self::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("confab.db")).unwrap();
                conn.execute_batch(&format!(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages
                         WHEN NEW.text = '{text}'
                         BEGIN SELECT RAISE(ABORT, 'refused'); END;"
                ))
                .unwrap();
            }
            Self::Postgres(db) => {
                let mut conn = db.connection().await;
                conn.execute(AssertSqlSafe(format!(
                    "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN
                         IF NEW.text = '{text}' THEN RAISE EXCEPTION 'refused'; END IF;
                         RETURN NEW;
                     END $$;
                     CREATE TRIGGER refuse_poison BEFORE INSERT ON messages
                         FOR EACH ROW EXECUTE FUNCTION refuse_poison();"
                )))
                .await
                .unwrap();
            }
        }
    }
}

#[tokio::test]
async fn room_activity_gives_each_room_the_time_of_its_last_message() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.store().await;
    assert!(store.room_activity(10).await.unwrap().is_empty());
    store
        .append(&[
            message("quiet", "ann", "1", 100),
            message("busy", "ann", "2", 200),
        ])
        .await
        .unwrap();
    store
        .append(&[message("busy", "ben", "3", 900)])
        .await
        .unwrap();

    let activity = store.room_activity(10).await.unwrap();

    assert_eq!(activity, [(room("busy"), 900), (room("quiet"), 100)]);
    assert_eq!(store.room_activity(1).await.unwrap(), [(room("busy"), 900)]);
    store.close().await;
}
