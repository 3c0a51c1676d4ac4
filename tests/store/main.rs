//! The stores against real engines: one contract ([`contract`]) that every backend must keep,
//! run against SQLite in a temporary folder and against the real PostgreSQL on this machine,
//! and what only PostgreSQL has to survive ([`postgres`]: several nodes, dropped connections,
//! outages), and what only SQLite has to survive ([`sqlite`]: a counter gone stale). Each
//! PostgreSQL test gets a database of its own, created through
//! `CONFAB_TEST_DATABASE_URL` and dropped when the test ends (even when it fails), so tests run
//! in parallel without seeing each other.

#[path = "../support/mod.rs"]
mod support;

mod contract;
mod postgres;
mod sqlite;

use std::sync::Arc;

use confab::domain::{ClientId, DisplayName, Message, RoomName, User, UserId};
use confab::store::postgres::PostgresStore;
use confab::store::sqlite::SqliteStore;
use confab::store::{Appended, NewMessage, Store};
use sqlx::{AssertSqlSafe, Executor};
pub(crate) use support::services::TestDatabase;

/// What a store test adds to the shared test database: the store on it.
impl TestDatabase {
    pub(crate) async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url)
            .await
            .expect("store connects")
    }
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

/// Ann's message with `text`.
pub(crate) fn said(room_name: &str, client_id: &str, text: &str) -> NewMessage {
    let mut new = message(room_name, "ann", client_id, 1);
    new.text = text.into();
    new
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

    /// The single number `sql` (e.g. a `count(*)`) answers, read beside the store.
    pub(crate) async fn count(&self, sql: &str) -> i64 {
        match self {
            Self::Sqlite(dir) => rusqlite::Connection::open(dir.path().join("confab.db"))
                .unwrap()
                .query_row(sql, [], |row| row.get(0))
                .unwrap(),
            Self::Postgres(db) => sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
                .fetch_one(&mut db.connection().await)
                .await
                .unwrap(),
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
