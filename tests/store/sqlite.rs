//! What only the embedded SQLite store has to survive: its write side keeps each room's last
//! seq in memory, and must not be stuck with a stale one when the file changes under it.

use confab::store::Store;
use confab::store::sqlite::SqliteStore;

use crate::{message, room, seqs, stored};

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
