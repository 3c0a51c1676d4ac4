//! The PostgreSQL store against the real PostgreSQL on this machine. Each test gets a database
//! of its own, created through `CONFAB_TEST_DATABASE_URL` and dropped when the test ends (even
//! when it fails), so tests run in parallel without seeing each other.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab::domain::{ClientId, DisplayName, Message, RoomName, User, UserId};
use confab::store::postgres::PostgresStore;
use confab::store::{Appended, NewMessage, Store};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

const DATABASE_URL_VAR: &str = "CONFAB_TEST_DATABASE_URL";

/// A database of one test's own, dropped (with any connections still open to it) on drop.
struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// A fresh, empty database, or `None` (after saying so loudly) when no server is configured
    /// outside CI. Under `CI=true` a missing server fails the test: nothing may be skipped there.
    async fn create() -> Option<Self> {
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

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url)
            .await
            .expect("store connects")
    }

    /// An extra connection to the test database, for arranging what the store cannot.
    async fn connection(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Ends every session on the test database except the caller's, and waits until they are
    /// gone, as a database restart or an administrator would.
    async fn kill_connections(&self) -> i64 {
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

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn user(name: &str) -> User {
    User {
        id: UserId::from_trusted(format!("user-{name}")),
        name: DisplayName::parse(name).unwrap(),
    }
}

fn message(room_name: &str, who: &str, client_id: &str, ts: i64) -> NewMessage {
    NewMessage {
        room: room(room_name),
        id: format!("id-{room_name}-{who}-{client_id}"),
        ts,
        user: user(who),
        text: format!("{who} says {client_id}"),
        client_id: ClientId::parse(client_id.to_owned()).unwrap(),
    }
}

fn stored(outcome: &Appended) -> &Message {
    match outcome {
        Appended::Stored(message) => message,
        Appended::Duplicate(message) => panic!("expected a new message, got duplicate {message:?}"),
    }
}

fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

#[tokio::test]
async fn append_numbers_each_room_from_one_in_batch_order() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.store().await;

    let first = store
        .append(&[
            message("a", "ann", "1", 10),
            message("b", "ann", "2", 11),
            message("a", "bob", "3", 12),
        ])
        .await
        .unwrap();
    let second = store
        .append(&[message("a", "ann", "4", 13), message("b", "bob", "5", 14)])
        .await
        .unwrap();

    let numbered: Vec<(&str, u64, &str)> = first
        .iter()
        .chain(&second)
        .map(|o| {
            let m = stored(o);
            (m.room.as_str(), m.seq, m.client_id.as_str())
        })
        .collect();
    assert_eq!(
        numbered,
        [
            ("a", 1, "1"),
            ("b", 1, "2"),
            ("a", 2, "3"),
            ("a", 3, "4"),
            ("b", 2, "5")
        ]
    );
    let page = store.latest(&room("a"), 10).await.unwrap();
    assert_eq!(seqs(&page.messages), [1, 2, 3]);
    assert_eq!(page.messages[1], *stored(&first[2]), "stored as returned");
    assert!(store.append(&[]).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn a_repeated_client_id_returns_the_original_and_takes_no_seq() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.store().await;
    let original = store.append(&[message("r", "ann", "c1", 1)]).await.unwrap();
    let original = stored(&original[0]).clone();

    // Across batches, and within one batch: only the first of each key is stored.
    let mut retry = message("r", "ann", "c1", 2);
    retry.text = "a different text".into();
    let outcomes = store
        .append(&[
            retry,
            message("r", "ann", "c2", 3),
            message("r", "ann", "c2", 4),
            message("r", "bob", "c1", 5), // another user may use the same client_id
        ])
        .await
        .unwrap();

    assert_eq!(outcomes[0], Appended::Duplicate(original));
    let c2 = stored(&outcomes[1]).clone();
    assert_eq!(c2.seq, 2);
    assert_eq!(outcomes[2], Appended::Duplicate(c2));
    assert_eq!(stored(&outcomes[3]).seq, 3);
    let next = store.append(&[message("r", "ann", "c3", 6)]).await.unwrap();
    assert_eq!(stored(&next[0]).seq, 4, "no seq was burnt by a duplicate");
    assert_eq!(
        seqs(&store.latest(&room("r"), 10).await.unwrap().messages),
        [1, 2, 3, 4]
    );
    store.close().await;
}

#[tokio::test]
async fn a_failed_batch_is_stored_not_at_all_and_burns_no_seq() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.store().await;
    store.append(&[message("r", "ann", "1", 1)]).await.unwrap();
    // Arrange a failure in the middle of the storing transaction: a trigger that refuses one text.
    let mut conn = db.connection().await;
    conn.execute(sqlx::raw_sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.text = 'poison' THEN RAISE EXCEPTION 'refused'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_poison BEFORE INSERT ON messages
             FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    ))
    .await
    .unwrap();
    let mut poison = message("r", "ann", "3", 3);
    poison.text = "poison".into();

    let failed = store
        .append(&[
            message("r", "ann", "2", 2),
            poison,
            message("q", "ann", "4", 4),
        ])
        .await;

    assert!(failed.is_err());
    let next = store
        .append(&[message("r", "ann", "2", 5), message("q", "ann", "4", 6)])
        .await
        .unwrap();
    assert_eq!(stored(&next[0]).seq, 2);
    assert_eq!(stored(&next[1]).seq, 1);
    assert_eq!(
        seqs(&store.latest(&room("r"), 10).await.unwrap().messages),
        [1, 2]
    );
    store.close().await;
}

#[tokio::test]
async fn text_with_a_nul_character_is_stored_with_a_replacement_instead_of_failing_the_batch() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.store().await;
    let mut nul = message("r", "ann", "2", 2);
    nul.text = "a\0b".into();

    let outcomes = store
        .append(&[message("r", "ann", "1", 1), nul])
        .await
        .unwrap();

    assert_eq!(stored(&outcomes[1]).text, "a\u{FFFD}b");
    let page = store.latest(&room("r"), 10).await.unwrap();
    assert_eq!(page.messages[1], *stored(&outcomes[1]));
    store.close().await;
}

#[tokio::test]
async fn history_pages_go_back_from_the_newest_and_say_whether_more_exist() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.store().await;
    let batch: Vec<NewMessage> = (1..=10)
        .map(|i| message("h", "ann", &i.to_string(), i))
        .collect();
    store.append(&batch).await.unwrap();
    store
        .append(&[message("other", "ann", "x", 11)])
        .await
        .unwrap();
    let h = room("h");

    let latest = store.latest(&h, 3).await.unwrap();
    assert_eq!(seqs(&latest.messages), [8, 9, 10]);
    assert!(latest.has_more);
    assert_eq!(latest.last_seq(), Some(10));

    let all = store.latest(&h, 50).await.unwrap();
    assert_eq!(seqs(&all.messages), (1..=10).collect::<Vec<_>>());
    assert!(!all.has_more);

    let before = store.before(&h, 8, 3).await.unwrap();
    assert_eq!(seqs(&before.messages), [5, 6, 7]);
    assert!(before.has_more);
    let oldest = store.before(&h, 3, 5).await.unwrap();
    assert_eq!(seqs(&oldest.messages), [1, 2]);
    assert!(!oldest.has_more);
    let from_newest = store.before(&h, 0, 2).await.unwrap();
    assert_eq!(seqs(&from_newest.messages), [9, 10]);

    let missed = store.after(&h, 7, 10).await.unwrap();
    assert_eq!(seqs(&missed.messages), [8, 9, 10]);
    assert!(missed.has_more);
    let capped = store.after(&h, 2, 3).await.unwrap();
    assert_eq!(seqs(&capped.messages), [8, 9, 10], "only the newest cap");
    let everything = store.after(&h, 0, 100).await.unwrap();
    assert_eq!(everything.messages.len(), 10);
    assert!(!everything.has_more);
    let nothing_new = store.after(&h, 10, 10).await.unwrap();
    assert!(nothing_new.messages.is_empty());
    assert!(!nothing_new.has_more);

    let empty = store.latest(&room("nobody-here"), 10).await.unwrap();
    assert!(empty.messages.is_empty());
    assert!(!empty.has_more);
    store.close().await;
}

#[tokio::test]
async fn rooms_are_listed_most_recently_active_first() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.store().await;
    assert!(store.recent_rooms(10).await.unwrap().is_empty());
    store
        .append(&[message("old", "ann", "1", 100)])
        .await
        .unwrap();
    store
        .append(&[message("middle", "ann", "2", 200)])
        .await
        .unwrap();
    store
        .append(&[message("new", "ann", "3", 300)])
        .await
        .unwrap();
    store
        .append(&[message("old", "ann", "4", 400)])
        .await
        .unwrap();
    // A duplicate is not activity.
    store
        .append(&[message("middle", "ann", "2", 500)])
        .await
        .unwrap();

    let rooms = store.recent_rooms(10).await.unwrap();

    assert_eq!(rooms, [room("old"), room("new"), room("middle")]);
    assert_eq!(store.recent_rooms(2).await.unwrap().len(), 2);
    store.close().await;
}

#[tokio::test]
async fn two_nodes_appending_to_one_room_at_once_get_seqs_one_to_n() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    // Two stores with their own pools: two nodes of one cluster.
    let nodes = [Arc::new(db.store().await), Arc::new(db.store().await)];
    const TASKS: usize = 16;
    const BATCHES: usize = 25;

    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let store = Arc::clone(&nodes[task % nodes.len()]);
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            for batch_no in 0..BATCHES {
                // 1-4 messages to the shared room, and some to two side rooms in either order,
                // so batches share several rooms and lock order matters.
                let mut batch = Vec::new();
                for i in 0..=(task + batch_no) % 4 {
                    let client_id = format!("t{task}-b{batch_no}-{i}");
                    batch.push(message("busy", &format!("u{task}"), &client_id, 1));
                }
                let side = if batch_no % 2 == 0 {
                    ["side-a", "side-b"]
                } else {
                    ["side-b", "side-a"]
                };
                if task % 3 == 0 {
                    for side_room in side {
                        let client_id = format!("t{task}-b{batch_no}");
                        batch.insert(0, message(side_room, &format!("u{task}"), &client_id, 1));
                    }
                }
                outcomes.extend(store.append(&batch).await.expect("append"));
            }
            outcomes
        });
    }
    let mut by_room: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    while let Some(outcomes) = tasks.join_next().await {
        for outcome in outcomes.unwrap() {
            let m = stored(&outcome);
            by_room.entry(m.room.to_string()).or_default().push(m.seq);
        }
    }

    for (name, mut handed_out) in by_room {
        handed_out.sort_unstable();
        let n = handed_out.len() as u64;
        assert_eq!(handed_out, (1..=n).collect::<Vec<_>>(), "room {name}");
        let page = nodes[0].latest(&room(&name), 10_000).await.unwrap();
        assert_eq!(
            seqs(&page.messages),
            (1..=n).collect::<Vec<_>>(),
            "room {name}"
        );
    }
    for node in nodes {
        node.close().await;
    }
}

#[tokio::test]
async fn the_store_carries_on_after_its_connections_are_killed() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.store().await;
    store.append(&[message("r", "ann", "1", 1)]).await.unwrap();
    store.latest(&room("r"), 10).await.unwrap();

    let killed = db.kill_connections().await;

    assert!(killed >= 1, "the store had a connection open");
    // The pool pings an idle connection before lending it: the very first call succeeds.
    let outcomes = store.append(&[message("r", "ann", "2", 2)]).await.unwrap();
    assert_eq!(stored(&outcomes[0]).seq, 2);
    assert_eq!(
        seqs(&store.latest(&room("r"), 10).await.unwrap().messages),
        [1, 2]
    );
    store.close().await;
}

#[tokio::test]
async fn an_outage_fails_calls_within_seconds_and_the_store_recovers_when_it_ends() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let mut proxy = Proxy::start(host_and_port(&db.url)).await;
    let store = PostgresStore::connect(&with_host_port(&db.url, proxy.port))
        .await
        .expect("store connects through the proxy");
    store.append(&[message("r", "ann", "1", 1)]).await.unwrap();

    proxy.cut().await;
    let started = Instant::now();
    let during = store.append(&[message("r", "ann", "2", 2)]).await;
    let waited = started.elapsed();
    assert!(during.is_err(), "no database, no append");
    assert!(waited < Duration::from_secs(6), "failed after {waited:?}");
    assert!(store.latest(&room("r"), 10).await.is_err());

    proxy.restore().await;
    let outcomes = store.append(&[message("r", "ann", "2", 3)]).await.unwrap();
    assert_eq!(
        stored(&outcomes[0]).seq,
        2,
        "the failed attempt burnt no seq"
    );
    store.close().await;
    proxy.cut().await;
}

#[tokio::test]
async fn connecting_to_a_database_that_is_not_there_fails_within_seconds() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    // A port that was just free: nothing listens there.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();

    let result = PostgresStore::connect(&with_host_port(&db.url, port)).await;

    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(6));
}

/// `url` pointed at 127.0.0.1:`port`, keeping user, database and query string.
fn with_host_port(url: &str, port: u16) -> String {
    let authority_start = url.find("://").map_or(0, |at| at + 3);
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let user = authority.rsplit_once('@').map(|(user, _)| user);
    let mut out = url[..authority_start].to_owned();
    if let Some(user) = user {
        out.push_str(user);
        out.push('@');
    }
    out.push_str(&format!("127.0.0.1:{port}"));
    out.push_str(&rest[authority_end..]);
    out
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore, to play an outage
/// without touching the machine's shared server.
struct Proxy {
    port: u16,
    upstream: (String, u16),
    task: Option<JoinHandle<()>>,
}

/// Where the database at `url` listens.
fn host_and_port(url: &str) -> (String, u16) {
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("database url");
    (options.get_host().to_owned(), options.get_port())
}

impl Proxy {
    async fn start(upstream: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxy = Self {
            port,
            upstream,
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            // Dropping this set (when the task is aborted) aborts every piped connection.
            let mut pipes = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstream.clone();
                pipes.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    /// Refuses new connections and drops the open ones; both are done when this returns.
    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // The aborted task, and with it the listener and every pipe, is dropped once the
            // handle reports it.
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind the proxy port");
        self.serve(listener);
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
