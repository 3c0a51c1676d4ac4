//! When the store cannot keep up or fails: a full writer queue answers at once with
//! `overloaded`, a failed batch answers every sender and burns no seq, and repeated client_ids
//! are answered with the original while messages pile up. The store is held up from outside:
//! a second SQLite connection takes the database's write lock, as a slow disk would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Client, TestServer};

/// Another connection to the server's database, holding its write lock while it lives (or
/// until `release`): the server's writer waits on it, up to its busy timeout of 5 s.
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn take(data_dir: &Path) -> Self {
        let conn = rusqlite::Connection::open(data_dir.join("confab.db")).expect("open database");
        conn.execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
        Self(conn)
    }

    /// Runs `sql` inside the held transaction; it takes effect on `release`.
    fn also(&self, sql: &str) {
        self.0.execute_batch(sql).expect("arrange the database");
    }

    fn release(self) {
        self.0
            .execute_batch("COMMIT")
            .expect("release the write lock");
    }
}

async fn server(writer_queue: u32) -> TestServer {
    TestServer::start_with(|config| {
        config.writer_queue = writer_queue;
        // Bursts of sends are the point here, not what the rate limits do with them.
        config.rate_limits = confab::config::RateLimits::Off;
    })
    .await
}

fn send(room: &str, text: &str, client_id: &str, reference: &str) -> Value {
    json!({"type": "send", "room": room, "text": text, "client_id": client_id, "ref": reference})
}

/// What became of each send, by ref: its own copy (`message`) or an `error`. Reads until every
/// one of `refs` has its answer; client_ids are the refs.
async fn answers(client: &mut Client, refs: &BTreeSet<String>) -> BTreeMap<String, Value> {
    let mut answered = BTreeMap::new();
    while answered.len() < refs.len() {
        let frame = client.recv().await;
        let key = match frame["type"].as_str() {
            Some("message") => frame["client_id"].as_str().map(str::to_owned),
            Some("error") => frame["ref"].as_str().map(str::to_owned),
            _ => None,
        };
        if let Some(key) = key.filter(|key| refs.contains(key)) {
            assert!(
                answered.insert(key, frame.clone()).is_none(),
                "answered twice: {frame}"
            );
        }
    }
    answered
}

#[tokio::test]
async fn a_full_writer_queue_refuses_sends_at_once_with_overloaded_and_a_retry_after() {
    const QUEUE: u32 = 4;
    const SENDS: usize = 20;
    let server = server(QUEUE).await;
    let mut ann = server.client("ann").await;
    ann.join("r").await;
    assert_eq!(ann.say("r", "before").await["seq"], 1);

    let lock = WriteLock::take(server.data_dir());
    let started = Instant::now();
    let refs: BTreeSet<String> = (0..SENDS).map(|i| format!("m{i}")).collect();
    for id in &refs {
        ann.send(send("r", id, id, id)).await;
    }
    // The writer holds at most one batch (what was queued when it woke, at most QUEUE) and
    // QUEUE more wait: everything past that is refused, and said so while the store is stuck.
    let mut refused = BTreeSet::new();
    while refused.len() < SENDS - 2 * QUEUE as usize {
        let frame = ann.recv().await;
        assert_eq!(
            frame["type"], "error",
            "nothing is stored while locked: {frame}"
        );
        assert_eq!(frame["code"], "overloaded", "{frame}");
        assert!(
            frame["retry_after_ms"].as_u64().is_some_and(|ms| ms >= 1),
            "{frame}"
        );
        refused.insert(frame["ref"].as_str().expect("the send's ref").to_owned());
    }
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "overloaded took {waited:?}"
    );
    lock.release();

    // Everything not refused was queued, and is stored once the lock goes.
    let queued: BTreeSet<String> = refs.difference(&refused).cloned().collect();
    let answered = answers(&mut ann, &queued).await;
    let mut stored_seqs = Vec::new();
    for (id, frame) in &answered {
        match frame["type"].as_str() {
            Some("message") => stored_seqs.push(frame["seq"].as_u64().expect("seq")),
            _ => {
                // Refused a little later, once the queue had filled again.
                assert_eq!(frame["code"], "overloaded", "{id}: {frame}");
                assert!(frame["retry_after_ms"].is_u64(), "{frame}");
            }
        }
    }
    stored_seqs.sort_unstable();
    let stored = stored_seqs.len() as u64;
    assert!((1..=2 * u64::from(QUEUE)).contains(&stored), "{answered:?}");
    assert_eq!(stored_seqs, (2..2 + stored).collect::<Vec<_>>(), "no gaps");

    // A refused message was not stored: sent again, it is a new message with the next seq.
    let again = refused.first().expect("one was refused");
    ann.send(send("r", again, again, again)).await;
    let retried = ann.recv_until("message").await;
    assert_eq!(retried["client_id"], again.as_str());
    assert_eq!(retried["seq"], 2 + stored);
}

#[tokio::test]
async fn a_failed_batch_answers_every_sender_and_burns_no_seq() {
    let server = server(8192).await;
    let mut ann = server.client("ann").await;
    let mut bob = server.client("bob").await;
    ann.join("r").await;
    bob.join("r").await;
    bob.join("q").await;
    assert_eq!(ann.say("r", "first").await["seq"], 1);

    // Every insert into room r fails while the trigger exists; room q is fine. The sends pile
    // up behind the lock, so they are stored in one or two batches together.
    let lock = WriteLock::take(server.data_dir());
    lock.also(
        "CREATE TRIGGER refuse_r BEFORE INSERT ON messages WHEN NEW.room = 'r'
         BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    );
    let ann_refs: BTreeSet<String> = ["a1", "a2"].map(String::from).into();
    let bob_refs: BTreeSet<String> = ["b1", "q1"].map(String::from).into();
    ann.send(send("r", "a1", "a1", "a1")).await;
    bob.send(send("r", "b1", "b1", "b1")).await;
    bob.send(send("q", "q1", "q1", "q1")).await;
    ann.send(send("r", "a2", "a2", "a2")).await;
    lock.release();

    let ann_answers = answers(&mut ann, &ann_refs).await;
    let bob_answers = answers(&mut bob, &bob_refs).await;
    for (id, frame) in ann_answers.iter().chain(&bob_answers) {
        if id == "q1" {
            // Stored if its batch held no message for r, refused with it otherwise.
            assert!(
                frame["type"] == "message" || frame["code"] == "unavailable",
                "{frame}"
            );
        } else {
            assert_eq!(frame["type"], "error", "{id}: {frame}");
            assert_eq!(frame["code"], "unavailable", "{id}: {frame}");
        }
    }

    let unlock = rusqlite::Connection::open(server.data_dir().join("confab.db")).unwrap();
    unlock.execute_batch("DROP TRIGGER refuse_r").unwrap();
    drop(unlock);
    ann.send(send("r", "a1", "a1", "a1")).await;
    assert_eq!(
        ann.recv_until("message").await["seq"],
        2,
        "no seq was burnt"
    );
    bob.send(send("r", "b1", "b1", "b1")).await;
    bob.send(send("q", "q1", "q1", "q1")).await;
    let mut bobs = BTreeMap::new();
    while bobs.len() < 3 {
        let frame = bob.recv_until("message").await;
        bobs.insert(frame["text"].as_str().unwrap().to_owned(), frame);
    }
    assert_eq!(bobs["a1"]["seq"], 2);
    assert_eq!(bobs["b1"]["seq"], 3);
    assert_eq!(bobs["q1"]["seq"], 1, "stored once, either time");
}

#[tokio::test]
async fn a_repeated_client_id_in_one_batch_and_across_batches_is_answered_with_the_original_under_load()
 {
    let server = server(8192).await;
    let mut ann = server.client("ann").await;
    let mut bob = server.client("bob").await;
    let mut carl = server.client("carl").await;
    ann.join("r").await;
    bob.join("r").await;
    carl.join("load").await;

    let lock = WriteLock::take(server.data_dir());
    for i in 0..200 {
        let id = format!("l{i}");
        carl.send(send("load", &id, &id, &id)).await;
    }
    ann.send(send("r", "dup", "dup", "d1")).await;
    ann.send(send("r", "dup again", "dup", "d2")).await;
    for i in 200..400 {
        let id = format!("l{i}");
        carl.send(send("load", &id, &id, &id)).await;
    }
    lock.release();

    let first = ann.recv_until("message").await;
    let second = ann.recv_until("message").await;
    assert_eq!(first["client_id"], "dup");
    assert_eq!(second, first, "the repeat gets the original back");
    assert_eq!(first["seq"], 1);
    assert_eq!(first["text"], "dup");
    // Across batches, after the load has been stored.
    let carls: BTreeSet<u64> = {
        let mut seqs = BTreeSet::new();
        while seqs.len() < 400 {
            let frame = carl.recv_until("message").await;
            seqs.insert(frame["seq"].as_u64().unwrap());
        }
        seqs
    };
    assert_eq!(
        carls,
        (1..=400).collect(),
        "the load is stored without gaps"
    );
    ann.send(send("r", "dup, later", "dup", "d3")).await;
    assert_eq!(ann.recv_until("message").await, first);

    // Everyone else saw it once: the next thing bob sees after it is the next message.
    let seen = bob.recv_until("message").await;
    assert_eq!(
        (seen["seq"].as_u64(), seen["text"].as_str()),
        (Some(1), Some("dup"))
    );
    ann.say("r", "after").await;
    let next = bob.recv_until("message").await;
    assert_eq!(next["seq"], 2);
    assert_eq!(next["text"], "after");
}
