//! The contract every store keeps, whatever the engine: gapless seqs per room in batch order,
//! duplicates answered with the original, all-or-nothing batches that burn no seq, history
//! paging, the rooms list, and counters that survive a restart. Each test runs on every backend
//! of [`Backend::all`].

use confab::store::{Appended, NewMessage};

use confab::domain::DisplayName;

use crate::{Backend, message, room, said, seqs, stored, user};

#[tokio::test]
async fn append_numbers_each_room_from_one_in_batch_order() {
    for backend in Backend::all().await {
        // Shown with the failure: which backend broke the contract.
        println!("backend: {}", backend.name());
        let store = backend.open().await;

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
}

#[tokio::test]
async fn a_repeated_client_id_returns_the_original_and_takes_no_seq() {
    for backend in Backend::all().await {
        // Shown with the failure: which backend broke the contract.
        println!("backend: {}", backend.name());
        let store = backend.open().await;
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
}

#[tokio::test]
async fn a_failed_batch_is_stored_not_at_all_and_burns_no_seq() {
    for backend in Backend::all().await {
        // Shown with the failure: which backend broke the contract.
        println!("backend: {}", backend.name());
        let store = backend.open().await;
        store.append(&[message("r", "ann", "1", 1)]).await.unwrap();
        // Arrange a failure in the middle of the storing transaction.
        backend.refuse_text("poison").await;
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
}

#[tokio::test]
async fn text_with_a_nul_character_is_stored_with_a_replacement_instead_of_failing_the_batch() {
    for backend in Backend::all().await {
        // Shown with the failure: which backend broke the contract.
        println!("backend: {}", backend.name());
        let store = backend.open().await;
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
}

#[tokio::test]
async fn history_pages_go_back_from_the_newest_and_say_whether_more_exist() {
    for backend in Backend::all().await {
        // Shown with the failure: which backend broke the contract.
        println!("backend: {}", backend.name());
        let store = backend.open().await;
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
}

#[tokio::test]
async fn rooms_are_listed_most_recently_active_first() {
    for backend in Backend::all().await {
        // Shown with the failure: which backend broke the contract.
        println!("backend: {}", backend.name());
        let store = backend.open().await;
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
}

#[tokio::test]
async fn a_failed_batch_with_repeats_in_it_burns_no_seq_either() {
    for backend in Backend::all().await {
        println!("backend: {}", backend.name());
        let store = backend.open().await;
        let first = store.append(&[message("r", "ann", "1", 1)]).await.unwrap();
        backend.refuse_text("poison").await;
        let mut poison = message("r", "bob", "p", 4);
        poison.text = "poison".into();

        // A repeat of a stored client_id and one within the batch: SQLite takes its row-by-row
        // path here, which must roll back as wholly as the fast one.
        let failed = store
            .append(&[
                message("r", "ann", "1", 2),
                message("r", "ann", "2", 3),
                message("r", "ann", "2", 3),
                poison,
            ])
            .await;

        assert!(failed.is_err());
        let next = store
            .append(&[message("r", "ann", "2", 5), message("r", "ann", "1", 6)])
            .await
            .unwrap();
        assert_eq!(stored(&next[0]).seq, 2);
        assert_eq!(
            next[1],
            Appended::Duplicate(stored(&first[0]).clone()),
            "the original, not a new seq"
        );
        assert_eq!(
            seqs(&store.latest(&room("r"), 10).await.unwrap().messages),
            [1, 2]
        );
        store.close().await;
    }
}

#[tokio::test]
async fn a_batch_over_a_thousand_rooms_with_repeats_numbers_every_room_without_gaps() {
    const ROOMS: usize = 1000;
    for backend in Backend::all().await {
        println!("backend: {}", backend.name());
        let store = backend.open().await;
        let first: Vec<NewMessage> = (0..ROOMS)
            .map(|i| message(&format!("room-{i}"), "ann", "a", 1))
            .collect();
        let first = store.append(&first).await.unwrap();
        assert!(first.iter().all(|o| stored(o).seq == 1));

        // Per room: a new message; every 10th room also repeats the earlier batch's client_id,
        // every 7th sends its new one twice in this batch.
        let mut second = Vec::new();
        for i in 0..ROOMS {
            let name = format!("room-{i}");
            if i % 10 == 0 {
                second.push(message(&name, "ann", "a", 2));
            }
            second.push(message(&name, "ann", "b", 2));
            if i % 7 == 0 {
                second.push(message(&name, "ann", "b", 3));
            }
        }
        let outcomes = store.append(&second).await.unwrap();

        assert_eq!(outcomes.len(), second.len());
        let mut new_in_room = std::collections::HashMap::new();
        for (sent, outcome) in second.iter().zip(&outcomes) {
            match (sent.client_id.as_str(), outcome) {
                ("a", Appended::Duplicate(original)) => assert_eq!(original.seq, 1),
                ("b", Appended::Stored(m)) => {
                    assert_eq!(m.seq, 2, "room {}", sent.room);
                    assert!(new_in_room.insert(sent.room.clone(), m.clone()).is_none());
                }
                ("b", Appended::Duplicate(original)) => {
                    assert_eq!(Some(original), new_in_room.get(&sent.room));
                }
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert_eq!(new_in_room.len(), ROOMS);
        for i in [0, 7, 999] {
            let page = store.latest(&room(&format!("room-{i}")), 10).await.unwrap();
            assert_eq!(seqs(&page.messages), [1, 2], "room-{i}");
        }
        store.close().await;
    }
}

#[tokio::test]
async fn counters_and_duplicates_survive_a_restart() {
    for backend in Backend::all().await {
        println!("backend: {}", backend.name());
        let store = backend.open().await;
        let batch: Vec<NewMessage> = (1..=3)
            .map(|i| message("r", "ann", &i.to_string(), i))
            .chain([message("s", "ann", "1", 4)])
            .collect();
        let before = store.append(&batch).await.unwrap();
        store.close().await;

        let store = backend.open().await;
        let after = store
            .append(&[
                message("r", "ann", "4", 5),
                message("s", "ann", "2", 6),
                message("r", "ann", "2", 7),
            ])
            .await
            .unwrap();

        assert_eq!(stored(&after[0]).seq, 4);
        assert_eq!(stored(&after[1]).seq, 2);
        assert_eq!(after[2], Appended::Duplicate(stored(&before[1]).clone()));
        assert_eq!(
            seqs(&store.latest(&room("r"), 10).await.unwrap().messages),
            [1, 2, 3, 4]
        );
        store.close().await;
    }
}

#[tokio::test]
async fn accounts_and_sessions_keep_the_same_contract_on_every_backend() {
    use confab::store::accounts::{Account, AccountError, SessionRow};
    for backend in Backend::all().await {
        println!("backend: {}", backend.name());
        let store = backend.open().await;
        let guest = Account {
            user: user("ann"),
            username: None,
            admin: false,
            banned: false,
            password_hash: None,
        };
        store.create_user(&guest, 1).await.unwrap();
        let found = store.account_by_id(&guest.user.id).await.unwrap().unwrap();
        assert!(found.user.guest && found.username.is_none());

        let session = |sid: &str, created: i64| SessionRow {
            sid: sid.into(),
            user_id: guest.user.id.clone(),
            created,
            last_seen: created,
            expires_at: 1_000,
            user_agent: "test".into(),
        };
        store.start_session(&session("s1", 10)).await.unwrap();
        store.start_session(&session("s2", 20)).await.unwrap();
        let (row, account) = store.session("s1", 15).await.unwrap().unwrap();
        assert_eq!(
            (row.sid.as_str(), account.user.id.clone()),
            ("s1", guest.user.id.clone())
        );
        assert!(
            store.session("s1", 1_000).await.unwrap().is_none(),
            "expired"
        );
        store.touch_session("s1", 500).await.unwrap();
        assert_eq!(
            store.session("s1", 600).await.unwrap().unwrap().0.last_seen,
            500
        );

        // The guest becomes an account under the same id; the username is then taken.
        let name = DisplayName::parse("Ann B").unwrap();
        assert!(
            store
                .register_guest(&guest.user.id, "ann", "hash", &name)
                .await
                .unwrap()
        );
        assert!(
            !store
                .register_guest(&guest.user.id, "ann2", "hash", &name)
                .await
                .unwrap()
        );
        let account = store.account_by_username("ann").await.unwrap().unwrap();
        assert_eq!(account.user.id, guest.user.id);
        assert!(!account.user.guest);
        assert_eq!(account.user.name, name);
        assert_eq!(account.password_hash.as_deref(), Some("hash"));
        let other = Account {
            user: user("bob"),
            username: Some("ann".into()),
            admin: false,
            banned: false,
            password_hash: Some("h".into()),
        };
        assert!(matches!(
            store.create_user(&other, 2).await,
            Err(AccountError::UsernameTaken)
        ));

        assert!(store.set_admin("ann", true).await.unwrap());
        assert!(!store.set_admin("nobody", true).await.unwrap());
        assert!(
            store
                .account_by_username("ann")
                .await
                .unwrap()
                .unwrap()
                .admin
        );

        let listed = store.sessions_of(&guest.user.id, 100).await.unwrap();
        assert_eq!(
            listed.iter().map(|s| s.sid.as_str()).collect::<Vec<_>>(),
            ["s1", "s2"]
        );
        assert!(
            store
                .end_session(&other.user.id, "s1")
                .await
                .unwrap()
                .is_none(),
            "not theirs"
        );
        assert_eq!(
            store
                .end_session(&guest.user.id, "s1")
                .await
                .unwrap()
                .unwrap()
                .sid,
            "s1"
        );
        store.start_session(&session("s3", 30)).await.unwrap();
        let ended = store
            .end_sessions_of(&guest.user.id, Some("s3"))
            .await
            .unwrap();
        assert_eq!(
            ended.iter().map(|s| s.sid.as_str()).collect::<Vec<_>>(),
            ["s2"]
        );
        assert_eq!(
            store.sessions_of(&guest.user.id, 100).await.unwrap().len(),
            1
        );
        store.close().await;
    }
}

#[tokio::test]
async fn a_deletion_is_an_event_that_leaves_a_tombstone_on_every_backend() {
    use confab::domain::Event;
    use confab::store::Refusal;
    let deletion = |who: &str, client_id: &str, target: u64, moderator: bool| {
        let mut new = message("d", who, client_id, 10);
        new.text.clear();
        new.event = Event::Deleted { target };
        new.moderator = moderator;
        new
    };
    for backend in Backend::all().await {
        println!("backend: {}", backend.name());
        let store = backend.open().await;
        store
            .append(&[message("d", "ann", "1", 1), message("d", "bob", "2", 2)])
            .await
            .unwrap();
        // In one batch: a message, then its deletion, a refusal, a moderator's deletion.
        let outcomes = store
            .append(&[
                message("d", "ann", "3", 3),
                deletion("ann", "x1", 3, false),
                deletion("ann", "x2", 2, false),
                deletion("mod", "x3", 2, true),
                deletion("ann", "x4", 99, false),
                deletion("ann", "x5", 4, false),
            ])
            .await
            .unwrap();
        assert_eq!(stored(&outcomes[0]).seq, 3);
        let first = stored(&outcomes[1]);
        assert_eq!((first.seq, first.event), (4, Event::Deleted { target: 3 }));
        assert_eq!(outcomes[2], Appended::Refused(Refusal::Forbidden));
        assert_eq!(stored(&outcomes[3]).seq, 5);
        assert_eq!(outcomes[4], Appended::Refused(Refusal::NotFound));
        assert_eq!(
            outcomes[5],
            Appended::Refused(Refusal::NotFound),
            "an event is no target"
        );
        // A deleted message is deleted once; a retry of a deletion is a duplicate.
        let again = store
            .append(&[
                deletion("ann", "x6", 3, false),
                deletion("ann", "x1", 3, false),
            ])
            .await
            .unwrap();
        assert_eq!(again[0], Appended::Refused(Refusal::NotFound));
        assert!(matches!(&again[1], Appended::Duplicate(original) if original.seq == 4));

        let latest = store.latest(&room("d"), 10).await.unwrap();
        assert_eq!(seqs(&latest.messages), [1, 2, 3], "messages only");
        assert_eq!(latest.end, Some(5), "the room's last seq counts events");
        let tombstones: Vec<(u64, bool, &str)> = latest
            .messages
            .iter()
            .map(|m| (m.seq, m.deleted, m.text.as_str()))
            .collect();
        assert_eq!(
            tombstones,
            [(1, false, "ann says 1"), (2, true, ""), (3, true, "")]
        );
        let history = store.before(&room("d"), 3, 10).await.unwrap();
        assert_eq!(seqs(&history.messages), [1, 2]);
        let resumed = store.after(&room("d"), 2, 10).await.unwrap();
        assert_eq!(seqs(&resumed.messages), [3, 4, 5]);
        assert_eq!(resumed.end, Some(5));
        let stream = store.stream_after(&room("d"), 3, 10).await.unwrap();
        assert_eq!(seqs(&stream.messages), [4, 5]);
        let empty = store.after(&room("nothing"), 0, 10).await.unwrap();
        assert_eq!((empty.messages.len(), empty.end), (0, Some(0)));
        store.close().await;
    }
}

#[tokio::test]
async fn edits_reactions_and_replies_keep_one_contract_on_every_backend() {
    use confab::domain::Event;
    use confab::store::Refusal;
    let event = |who: &str, client_id: &str, event: Event, text: &str| {
        let mut new = message("e", who, client_id, 20);
        new.text = text.into();
        new.event = event;
        new
    };
    for backend in Backend::all().await {
        println!("backend: {}", backend.name());
        let store = backend.open().await;
        store.append(&[message("e", "ann", "1", 1)]).await.unwrap();
        let mut reply = message("e", "bob", "2", 2);
        reply.reply_to = Some(1);
        let mut stray = message("e", "bob", "3", 3);
        stray.reply_to = Some(42);
        let outcomes = store
            .append(&[
                reply,
                stray,
                event("ann", "x1", Event::Edited { target: 1 }, "edited"),
                event("bob", "x2", Event::Edited { target: 1 }, "not yours"),
                event(
                    "bob",
                    "x3",
                    Event::Reaction {
                        target: 1,
                        added: true,
                    },
                    "👍",
                ),
                event(
                    "bob",
                    "x4",
                    Event::Reaction {
                        target: 1,
                        added: true,
                    },
                    "👍",
                ),
                event(
                    "ann",
                    "x5",
                    Event::Reaction {
                        target: 1,
                        added: true,
                    },
                    "👍",
                ),
                event(
                    "ann",
                    "x6",
                    Event::Reaction {
                        target: 1,
                        added: false,
                    },
                    "🎉",
                ),
                event(
                    "ann",
                    "x7",
                    Event::Reaction {
                        target: 2,
                        added: true,
                    },
                    "🎉",
                ),
                event(
                    "ann",
                    "x8",
                    Event::Reaction {
                        target: 2,
                        added: false,
                    },
                    "🎉",
                ),
            ])
            .await
            .unwrap();
        assert_eq!(stored(&outcomes[0]).reply_to, Some(1));
        assert_eq!(outcomes[1], Appended::Refused(Refusal::NotFound));
        assert_eq!(stored(&outcomes[2]).seq, 3);
        assert_eq!(outcomes[3], Appended::Refused(Refusal::Forbidden));
        assert_eq!(stored(&outcomes[4]).seq, 4);
        assert_eq!(outcomes[5], Appended::Refused(Refusal::NoChange));
        assert_eq!(stored(&outcomes[6]).seq, 5);
        assert_eq!(outcomes[7], Appended::Refused(Refusal::NoChange));
        assert_eq!(stored(&outcomes[8]).seq, 6);
        assert_eq!(stored(&outcomes[9]).seq, 7);

        let latest = store.latest(&room("e"), 10).await.unwrap();
        assert_eq!(seqs(&latest.messages), [1, 2]);
        assert_eq!(latest.end, Some(7));
        let first = &latest.messages[0];
        assert_eq!(first.text, "edited");
        assert!(first.edited_at.is_some());
        assert_eq!(first.reactions.len(), 1);
        assert_eq!(
            (first.reactions[0].emoji.as_str(), first.reactions[0].count),
            ("👍", 2)
        );
        let listed: Vec<&str> = first.reactions[0]
            .users
            .iter()
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(listed, ["bob", "ann"], "in the order given");
        assert!(
            latest.messages[1].reactions.is_empty(),
            "given and taken back"
        );
        assert_eq!(latest.messages[1].reply_to, Some(1));

        let replay = store.after(&room("e"), 2, 10).await.unwrap();
        let kinds: Vec<Event> = replay.messages.iter().map(|m| m.event).collect();
        assert_eq!(
            kinds,
            [
                Event::Edited { target: 1 },
                Event::Reaction {
                    target: 1,
                    added: true
                },
                Event::Reaction {
                    target: 1,
                    added: true
                },
                Event::Reaction {
                    target: 2,
                    added: true
                },
                Event::Reaction {
                    target: 2,
                    added: false
                },
            ]
        );
        assert_eq!(replay.messages[0].text, "edited");
        assert_eq!(replay.messages[1].text, "👍");
        // A deletion takes the message's reactions with it.
        let gone = store
            .append(&[event("ann", "x9", Event::Deleted { target: 1 }, "")])
            .await
            .unwrap();
        assert_eq!(stored(&gone[0]).seq, 8);
        let latest = store.latest(&room("e"), 10).await.unwrap();
        assert!(latest.messages[0].deleted && latest.messages[0].reactions.is_empty());
        let late = store
            .append(&[event(
                "bob",
                "y1",
                Event::Reaction {
                    target: 1,
                    added: true,
                },
                "👍",
            )])
            .await
            .unwrap();
        assert_eq!(
            late[0],
            Appended::Refused(Refusal::NotFound),
            "no reactions to a tombstone"
        );
        store.close().await;
    }
}

#[tokio::test]
async fn search_finds_current_text_in_one_room_newest_first_on_every_backend() {
    use confab::domain::Event;
    use confab::store::search_words;
    for backend in Backend::all().await {
        println!("backend: {}", backend.name());
        let store = backend.open().await;
        store
            .append(&[
                said("s", "1", "the quick brown fox"),
                said("s", "2", "a lazy dog"),
                said("s", "3", "Quick thinking, brown bread"),
                said("other", "4", "quick brown fox elsewhere"),
                said("s", "5", "fox \"quoted\" AND OR NOT NEAR( * col:"),
            ])
            .await
            .unwrap();
        let found = |words: &str, before: u64, limit: u32| {
            let store = &store;
            let words = search_words(words);
            async move {
                let (messages, more) = store
                    .search(&room("s"), &words, before, limit)
                    .await
                    .unwrap();
                (seqs(&messages), more)
            }
        };
        assert_eq!(
            found("quick brown", 0, 20).await,
            (vec![3, 1], false),
            "every word, any case"
        );
        assert_eq!(
            found("QUICK", 0, 1).await,
            (vec![3], true),
            "paged newest first"
        );
        assert_eq!(
            found("quick", 3, 20).await,
            (vec![1], false),
            "before a seq"
        );
        assert_eq!(found("cat", 0, 20).await, (vec![], false));
        // Operators and quotes are text, never syntax (and never an error).
        for literal in ["AND", "\"quoted\"", "NEAR(", "col:", "*", "\"", "OR NOT"] {
            store
                .search(&room("s"), &search_words(literal), 0, 20)
                .await
                .unwrap();
        }
        // (The room's fourth message: the other room's took no seq of this one.)
        assert_eq!(found("quoted", 0, 20).await, (vec![4], false));
        assert_eq!(
            found("elsewhere", 0, 20).await,
            (vec![], false),
            "one room only"
        );
        // An edit is found by its new text only; a deletion is found no more.
        let mut edit = message("s", "ann", "e1", 2);
        edit.text = "a sleepy cat".into();
        edit.event = Event::Edited { target: 2 };
        let mut delete = message("s", "ann", "d1", 3);
        delete.text.clear();
        delete.event = Event::Deleted { target: 1 };
        store.append(&[edit, delete]).await.unwrap();
        assert_eq!(found("cat", 0, 20).await, (vec![2], false));
        assert_eq!(found("lazy", 0, 20).await, (vec![], false));
        assert_eq!(
            found("fox", 0, 20).await,
            (vec![4], false),
            "the deleted fox is gone"
        );
        store.close().await;
    }
}

#[tokio::test]
async fn read_markers_only_move_forward_on_every_backend() {
    for backend in Backend::all().await {
        println!("backend: {}", backend.name());
        let store = backend.open().await;
        let ann = user("ann");
        store
            .append(&[
                message("m", "bob", "1", 1),
                message("m", "bob", "2", 2),
                message("m", "ann", "3", 3),
                message("m", "bob", "4", 4),
            ])
            .await
            .unwrap();
        assert_eq!(store.read_seq(&ann.id, &room("m")).await.unwrap(), None);
        assert_eq!(store.mark_read(&ann.id, &room("m"), 1).await.unwrap(), 1);
        assert_eq!(
            store.mark_read(&ann.id, &room("m"), 0).await.unwrap(),
            1,
            "never back"
        );
        // Her own message at seq 3 counts as read up to it.
        assert_eq!(store.read_seq(&ann.id, &room("m")).await.unwrap(), Some(3));
        let unread = store.unread(&ann.id, &room("m"), 3).await.unwrap();
        assert_eq!(unread.count, 1);
        assert_eq!(unread.texts, ["bob says 4"]);
        assert_eq!(
            store.read_markers_of(&ann.id).await.unwrap(),
            [("m".to_owned(), 1)]
        );
        store.close().await;
    }
}

#[tokio::test]
async fn retention_purges_each_rooms_oldest_run_and_keeps_seqs_history_and_search_exact() {
    use confab::domain::Event;
    use confab::store::search_words;
    let at = |room_name: &str, client_id: &str, ts: i64, text: &str| {
        let mut new = message(room_name, "ann", client_id, ts);
        new.text = text.into();
        new
    };
    let event = |client_id: &str, ts: i64, event: Event, text: &str| {
        let mut new = at("r", client_id, ts, text);
        new.event = event;
        new
    };
    for backend in Backend::all().await {
        println!("backend: {}", backend.name());
        let store = backend.open().await;
        // Room r: seqs 1-4 old (with an edit, a reaction and a reply among them), 5-8 new;
        // seq 7 edits message 2 after the horizon, seq 8 reacts to message 5.
        store
            .append(&[
                at("r", "1", 100, "old apple"),
                at("r", "2", 110, "old banana"),
                event("e1", 120, Event::Edited { target: 1 }, "old apple edited"),
                event(
                    "e2",
                    130,
                    Event::Reaction {
                        target: 2,
                        added: true,
                    },
                    "👍",
                ),
                at("r", "5", 1_000, "new apple"),
                {
                    let mut reply = at("r", "6", 1_010, "new reply");
                    reply.reply_to = Some(2);
                    reply
                },
                event("e3", 1_020, Event::Edited { target: 2 }, "late edit"),
                event(
                    "e4",
                    1_030,
                    Event::Reaction {
                        target: 5,
                        added: true,
                    },
                    "🎉",
                ),
            ])
            .await
            .unwrap();
        // Room clock: item 3 is new but item 4 is old again (a node's clock behind): the purged
        // run ends before item 3, leaving no hole.
        store
            .append(&[
                at("clock", "1", 100, "c1"),
                at("clock", "2", 100, "c2"),
                at("clock", "3", 2_000, "c3"),
                at("clock", "4", 100, "c4"),
            ])
            .await
            .unwrap();
        // Room all-old: purged empty. Room fresh: untouched.
        store
            .append(&[at("all-old", "1", 10, "x"), at("all-old", "2", 20, "y")])
            .await
            .unwrap();
        store.append(&[at("fresh", "1", 5_000, "z")]).await.unwrap();

        // Batches of 2 items, so every room takes several.
        let purged = store.purge_before(500, 2).await.unwrap();

        assert_eq!(purged, 4 + 2 + 2, "r's 1-4, clock's 1-2, all-old's 1-2");
        let after = store.after(&room("r"), 0, 100).await.unwrap();
        assert_eq!(seqs(&after.messages), [5, 6, 7, 8], "the rest, gapless");
        assert_eq!(after.end, Some(8));
        assert!(!after.has_more, "nothing older is stored");
        assert_eq!(
            after.messages[1].reply_to,
            Some(2),
            "a reply keeps reply_to"
        );
        let latest = store.latest(&room("r"), 50).await.unwrap();
        assert_eq!(seqs(&latest.messages), [5, 6]);
        assert!(!latest.has_more, "history stops at the oldest kept message");
        assert_eq!(latest.messages[0].reactions.len(), 1, "kept reactions stay");
        assert_eq!(
            backend.count("SELECT count(*) FROM reactions").await,
            1,
            "the purged message's reaction went with it"
        );
        let older = store.before(&room("r"), 5, 50).await.unwrap();
        assert!(older.messages.is_empty() && !older.has_more);
        let page = store.before(&room("r"), 0, 1).await.unwrap();
        assert_eq!(
            (seqs(&page.messages), page.has_more),
            (vec![6], true),
            "a page above the oldest kept message still says more"
        );
        let (found, _) = store
            .search(&room("r"), &search_words("apple"), 0, 10)
            .await
            .unwrap();
        assert_eq!(seqs(&found), [5], "the search index lost the purged text");

        let clock = store.after(&room("clock"), 0, 100).await.unwrap();
        assert_eq!(seqs(&clock.messages), [3, 4]);
        let emptied = store.after(&room("all-old"), 0, 100).await.unwrap();
        assert!(emptied.messages.is_empty());
        assert_eq!(emptied.end, Some(2), "the counter stays");
        let fresh = store.after(&room("fresh"), 0, 100).await.unwrap();
        assert_eq!(seqs(&fresh.messages), [1]);

        // Seqs go on from the counter, never reusing a purged one; a client_id of a purged
        // message is new again (retries come seconds apart, not days).
        let next = store
            .append(&[
                at("all-old", "1", 6_000, "again"),
                at("r", "9", 6_000, "on"),
            ])
            .await
            .unwrap();
        assert_eq!(stored(&next[0]).seq, 3);
        assert_eq!(stored(&next[1]).seq, 9);
        // Nothing more is that old: a second purge finds nothing.
        assert_eq!(store.purge_before(500, 2).await.unwrap(), 0);
        store.close().await;
        // And after a restart, the counters still go on.
        let store = backend.open().await;
        let outcome = store
            .append(&[at("all-old", "3", 7_000, "after restart")])
            .await
            .unwrap();
        assert_eq!(stored(&outcome[0]).seq, 4);
        store.close().await;
    }
}
