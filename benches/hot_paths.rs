//! Micro-benchmarks of the hot paths, without sockets: encoding a message frame, fanning one
//! message out to a room of N members, and the group-commit writer storing a burst in SQLite.
//! Run with `cargo bench --bench hot_paths`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use confab::broker::local::LocalBroker;
use confab::broker::{Deliver, Published};
use confab::domain::{ClientId, ConnectionId, DisplayName, Event, Message, RoomName, User, UserId};
use confab::protocol::server;
use confab::rooms::hub::{Activation, Hub, Take};
use confab::rooms::outbox::outbox;
use confab::rooms::writer::{AppendError, Writer};
use confab::store::sqlite::SqliteStore;
use confab::store::{NewMessage, Page, Store};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn user(n: usize) -> User {
    User {
        id: UserId::from_trusted(format!("user-{n}")),
        name: DisplayName::parse(&format!("user {n}")).unwrap(),
        guest: true,
    }
}

fn message(seq: u64) -> Message {
    Message {
        room: RoomName::parse("bench").unwrap(),
        seq,
        id: "0193a0b2-7c3a-7d1e-9a51-3b2f8c0d4e11".into(),
        ts: 1_732_406_400_000,
        user: user(0),
        text: "a chat line of about the length people type, with a little punctuation!".into(),
        client_id: "c-1".into(),
        event: Event::Message,
        deleted: false,
        edited_at: None,
        reply_to: None,
        reactions: Vec::new(),
    }
}

fn encode(c: &mut Criterion) {
    let message = message(1);
    c.bench_function("encode message frame", |b| {
        b.iter(|| server::message(black_box(&message), false))
    });
}

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("fan-out one message");
    for members in [10usize, 100, 1000] {
        let hub = Hub::default();
        let room = RoomName::parse("bench").unwrap();
        let mut receivers = Vec::new();
        for n in 0..members {
            let (sender, receiver) = outbox();
            let conn = ConnectionId(n as u64);
            let viewer = user(n).id;
            hub.subscribe(&room, conn, &user(n), sender).unwrap();
            let join = Activation {
                room: &room,
                conn,
                viewer: &viewer,
                since: None,
                reset: false,
                read_seq: None,
            };
            hub.activate(join, Page::default());
            receivers.push((conn, receiver));
        }
        let mut seq = 0;
        let mut out = std::collections::VecDeque::new();
        let mut rooms = Vec::new();
        group.throughput(Throughput::Elements(members as u64));
        group.bench_function(format!("{members} members"), |b| {
            b.iter(|| {
                seq += 1;
                hub.deliver(Published {
                    message: Arc::new(message(seq)),
                    origin: None,
                });
                // What each connection does when woken: take its frames from the room's log.
                for (conn, receiver) in &receivers {
                    out.clear();
                    receiver.take_frames(&mut out, usize::MAX);
                    rooms.clear();
                    receiver.take_rooms(&mut rooms);
                    for room in &rooms {
                        while hub.take(room, *conn, usize::MAX, &mut out, &mut None).0 == Take::More
                        {
                        }
                    }
                }
            })
        });
    }
    group.finish();
}

/// About 100 bytes of 15 words, as people type them: drawn from a vocabulary of 2,000 words,
/// so the full-text index does the work real text gives it (one repeated token would not).
fn chat_line(n: u64) -> String {
    let mut line = String::with_capacity(110);
    for i in 0..15u64 {
        if i > 0 {
            line.push(' ');
        }
        let word = n.wrapping_mul(2_654_435_761).wrapping_add(i * 7_919) % 2_000;
        line.push_str(&format!("w{word}"));
    }
    line
}

/// A burst of `BURST` new messages spread round-robin over `rooms` rooms.
fn burst(rooms: u64, next: &mut u64) -> Vec<NewMessage> {
    (0..BURST)
        .map(|_| {
            *next += 1;
            NewMessage {
                room: RoomName::parse(&format!("room-{}", *next % rooms)).unwrap(),
                id: format!("id-{next}"),
                ts: 0,
                user: user(0),
                text: chat_line(*next),
                client_id: ClientId::parse(format!("c-{next}")).unwrap(),
                event: Event::Message,
                reply_to: None,
                moderator: false,
            }
        })
        .collect()
}

const BURST: u64 = 1000;

/// The group-commit writer alone (queue, SQLite WAL store, local publish with no one
/// listening): a burst of 1,000 messages, which it stores as one or two batches.
fn group_commit(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("group commit");
    group.throughput(Throughput::Elements(BURST));
    for rooms in [1u64, 10, 1000] {
        let dir = tempfile::tempdir().unwrap();
        let (writer, store) = runtime.block_on(async {
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
            let hub = Arc::new(Hub::default());
            let (writer, _task) =
                Writer::spawn(store.clone(), Arc::new(LocalBroker::new(hub)), None).unwrap();
            (writer, store)
        });
        let mut next = 0u64;
        group.bench_function(
            format!("1000 messages over {rooms} rooms, SQLite WAL"),
            |b| {
                b.to_async(&runtime).iter_batched(
                    || burst(rooms, &mut next),
                    |burst| {
                        let writer = writer.clone();
                        async move {
                            let mut replies = Vec::with_capacity(burst.len());
                            for message in burst {
                                // The writer refuses while its queue holds more than it can
                                // store soon; a client waits retry_after_ms, so does the bench.
                                let reply = loop {
                                    match writer
                                        .append(message.clone(), Some(ConnectionId(0)))
                                        .await
                                    {
                                        Ok(reply) => break reply,
                                        Err(AppendError::Overloaded { retry_after_ms }) => {
                                            let wait = Duration::from_millis(retry_after_ms);
                                            tokio::time::sleep(wait).await;
                                        }
                                        Err(error) => panic!("append failed: {error}"),
                                    }
                                };
                                replies.push(reply);
                            }
                            for reply in replies {
                                reply.await.unwrap().unwrap();
                            }
                        }
                    },
                    BatchSize::SmallInput,
                )
            },
        );
        runtime.block_on(async {
            writer.stop().await;
            store.close().await;
        });
    }
    group.finish();
}

/// One batch straight into the SQLite store: what a commit costs without the queue.
fn store_batch(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("SQLite append, one batch");
    group.throughput(Throughput::Elements(BURST));
    for rooms in [1u64, 1000] {
        let dir = tempfile::tempdir().unwrap();
        let store = runtime.block_on(SqliteStore::open(dir.path())).unwrap();
        let mut next = 0u64;
        group.bench_function(format!("1000 messages over {rooms} rooms"), |b| {
            b.to_async(&runtime).iter_batched(
                || burst(rooms, &mut next),
                |burst| {
                    let store = &store;
                    async move { store.append(&burst).await.unwrap() }
                },
                BatchSize::SmallInput,
            )
        });
        runtime.block_on(store.close());
    }
    group.finish();
}

criterion_group!(benches, encode, fan_out, group_commit, store_batch);
criterion_main!(benches);
