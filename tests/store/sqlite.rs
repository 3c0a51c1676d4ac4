//! What only the embedded SQLite store has to survive: its write side keeps each room's last
//! seq in memory, and must not be stuck with a stale one when the file changes under it.

use confab::store::Store;
use confab::store::sqlite::SqliteStore;

use crate::{message, room, said, seqs, stored};

#[tokio::test]
async fn a_batch_that_fails_on_a_stale_counter_is_followed_by_one_that_reads_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store.append(&[message("r", "ann", "1", 1)]).await.unwrap();
    // Another process stores seq 2 behind the store's back (it should never, but a restored
    // backup or a second server on the same folder would look like this).
    let other = rusqlite::Connection::open(dir.path().join("confab.db")).unwrap();
    other
        .execute_batch(
            "INSERT INTO messages (room, seq, id, ts, user_id, user_name, text, client_id)
                 VALUES ('r', 2, 'x', 2, 'user-bob', 'bob', 'from elsewhere', 'o1');
             UPDATE rooms SET last_seq = 2 WHERE name = 'r';",
        )
        .unwrap();
    drop(other);

    let failed = store.append(&[message("r", "ann", "2", 3)]).await;
    let next = store.append(&[message("r", "ann", "2", 4)]).await.unwrap();

    assert!(failed.is_err(), "seq 2 is taken");
    assert_eq!(stored(&next[0]).seq, 3);
    assert_eq!(
        seqs(&store.latest(&room("r"), 10).await.unwrap().messages),
        [1, 2, 3]
    );
    store.close().await;
}

/// A database written before messages were kept in arrival order (migration 0140): after the
/// upgrade its messages, their seqs, edits and deletions read back as they were, the search finds
/// them through the rebuilt index, and new messages continue the rooms' numbering.
#[tokio::test]
async fn a_database_from_before_arrival_order_keeps_its_messages_and_search() {
    use confab::domain::Event;
    use confab::store::search_words;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool};

    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("confab.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let old = SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate!("./migrations/sqlite")
        .run_to(130, &old)
        .await
        .unwrap();
    // Two rooms interleaved, as a busy server stores them; 'r' seq 2 edited, seq 3 deleted.
    sqlx::raw_sql(
        "INSERT INTO messages (room, seq, id, ts, user_id, user_name, text, client_id) VALUES
             ('r', 1, 'a', 1, 'user-ann', 'ann', 'the quick brown fox', 'c1'),
             ('q', 1, 'b', 2, 'user-bob', 'bob', 'a quick word elsewhere', 'c1'),
             ('r', 2, 'c', 3, 'user-ann', 'ann', 'a lazy dog', 'c2'),
             ('r', 3, 'd', 4, 'user-bob', 'bob', 'quick, delete me', 'c3');
         UPDATE messages SET text = 'a quick dog', edited_at = 5 WHERE room = 'r' AND seq = 2;
         UPDATE messages SET text = '', deleted = 1 WHERE room = 'r' AND seq = 3;
         INSERT INTO rooms (name, last_seq, created_at, last_active) VALUES
             ('r', 3, 1, 4), ('q', 1, 2, 2);",
    )
    .execute(&old)
    .await
    .unwrap();
    old.close().await;

    let store = SqliteStore::open(dir.path()).await.unwrap();
    let page = store.latest(&room("r"), 10).await.unwrap();
    assert_eq!(seqs(&page.messages), [1, 2, 3]);
    assert_eq!(page.messages[1].text, "a quick dog");
    assert!(page.messages[2].deleted);
    let found = |words: &'static str| {
        let store = &store;
        async move {
            let (messages, _) = store
                .search(&room("r"), &search_words(words), 0, 10)
                .await
                .unwrap();
            seqs(&messages)
        }
    };
    assert_eq!(found("quick").await, [2, 1], "newest first, one room only");
    assert_eq!(
        found("lazy").await,
        Vec::<u64>::new(),
        "the edit's old text"
    );

    let next = store.append(&[message("r", "ann", "c4", 6)]).await.unwrap();
    assert_eq!(stored(&next[0]).seq, 4);
    let mut edit = message("r", "ann", "e1", 7);
    edit.text = "a slow fox".into();
    edit.event = Event::Edited { target: 1 };
    store.append(&[edit]).await.unwrap();
    assert_eq!(found("fox").await, [1], "re-indexed by its position");
    assert_eq!(found("quick").await, [2]);
    assert_eq!(found("ann").await, [4], "a new message is found");
    store.close().await;
}

/// The search index is derived from the messages and lives in a file of its own: when that
/// file is gone, or belongs to another database, the next start rebuilds it from the log, and
/// a search waits for the messages stored before it.
#[tokio::test]
async fn the_search_index_is_rebuilt_when_its_file_is_gone_or_from_another_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store
        .append(&[
            said("r", "1", "apples and pears"),
            said("r", "2", "more apples"),
        ])
        .await
        .unwrap();
    assert_eq!(found(&store, "apples").await, [2, 1]);
    store.close().await;

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("search.db{suffix}")));
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(
        found(&store, "apples").await,
        [2, 1],
        "rebuilt from the log"
    );
    store.close().await;

    // Another data folder's index, with messages this one never had, taken for this one's.
    let other = tempfile::tempdir().unwrap();
    let elsewhere = SqliteStore::open(other.path()).await.unwrap();
    let many: Vec<_> = (0..5)
        .map(|i| said("r", &format!("x{i}"), "bananas only"))
        .collect();
    elsewhere.append(&many).await.unwrap();
    assert_eq!(found(&elsewhere, "bananas").await, [5, 4, 3, 2, 1]);
    elsewhere.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let name = format!("search.db{suffix}");
        let _ = std::fs::remove_file(dir.path().join(&name));
        if other.path().join(&name).exists() {
            std::fs::copy(other.path().join(&name), dir.path().join(&name)).unwrap();
        }
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(found(&store, "bananas").await, Vec::<u64>::new());
    assert_eq!(found(&store, "apples").await, [2, 1]);
    store
        .append(&[said("r", "3", "apples again")])
        .await
        .unwrap();
    assert_eq!(
        found(&store, "apples").await,
        [3, 2, 1],
        "a search waits for what was stored before it"
    );
    store.close().await;
}

/// The seqs of room `r`'s messages that have every word, newest first.
async fn found(store: &SqliteStore, words: &str) -> Vec<u64> {
    let words = confab::store::search_words(words);
    let (messages, _) = store.search(&room("r"), &words, 0, 10).await.unwrap();
    seqs(&messages)
}

/// A damaged index file does not keep the store from opening: it is started over.
#[tokio::test]
async fn a_damaged_search_index_is_started_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store
        .append(&[said("r", "1", "apples and pears")])
        .await
        .unwrap();
    store.close().await;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("search.db{suffix}")));
    }
    std::fs::write(
        dir.path().join("search.db"),
        b"this is not an SQLite database, not even its header",
    )
    .unwrap();

    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(found(&store, "apples").await, [1]);
    store.close().await;
}
