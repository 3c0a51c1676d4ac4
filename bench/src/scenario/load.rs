//! The load engine behind `fanout`, `rooms`, `slow` and `joins --churn`: rooms of joined
//! members, some of which send on an open-loop schedule, measured phase by phase.
//!
//! Every member is one task owning one connection. Receivers check each message's `seq`
//! against what they have seen and record the latency stamped in its text. Senders are
//! members too (they receive their own messages back) and send on a schedule the
//! orchestrator hands them through a `watch` channel, one plan per phase. Slow members read
//! until told to stall, then stop reading entirely, and at the end read what is left to see
//! how the server closed them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::Bench;
use crate::client::{Client, Incoming};
use crate::metrics::Seen;
use crate::metrics::SeqTracker;
use crate::protocol::{ClientFrame, ServerFrame, scan_message};
use crate::report::PhaseStats;
use crate::stamp::{self, Stamp};

/// Lead time between publishing a plan and its first send, so every sender has the plan
/// before its first message is due.
const PLAN_LEAD: Duration = Duration::from_millis(50);

/// Most frames a sender reads in one go before it looks at its schedule again.
const READ_BURST: usize = 1024;

/// The shape of a load.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub rooms: usize,
    /// Members per room, senders and slow members included.
    pub members: usize,
    pub senders_per_room: usize,
    /// Members per room that stall when told to (not tracked for deliveries).
    pub slow_per_room: usize,
    /// SO_RCVBUF for slow members' sockets.
    pub slow_rcvbuf: Option<u32>,
}

/// What slow members do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowMode {
    /// Read and discard, like everyone else.
    Reading,
    /// Read nothing at all.
    Stalled,
    /// Read what is left to learn how the connection ended.
    Draining,
}

/// How the slow members' connections ended, counted after `SlowMode::Draining`.
#[derive(Debug, Default)]
pub struct SlowOutcomes {
    pub closed_4001: AtomicU64,
    pub closed_other: AtomicU64,
    pub still_open: AtomicU64,
    pub finished: AtomicU64,
}

/// One phase's sending schedule, for each sender: `count` messages, the k-th due at
/// `start + k / rate`.
#[derive(Debug, Clone, Copy)]
struct Plan {
    rate: f64,
    start: Instant,
    count: u64,
}

/// Senders that have finished the current plan.
#[derive(Default)]
struct Finished {
    count: AtomicUsize,
    notify: Notify,
}

impl Finished {
    fn arrive(&self) {
        self.count.fetch_add(1, Relaxed);
        self.notify.notify_one();
    }
}

/// A running load: its member tasks and the handles that steer them.
pub struct Load {
    bench: Arc<Bench>,
    spec: LoadSpec,
    pub rooms: Vec<Arc<str>>,
    plan: watch::Sender<Plan>,
    slow_mode: watch::Sender<SlowMode>,
    pub slow_outcomes: Arc<SlowOutcomes>,
    finished: Arc<Finished>,
    /// Senders whose connection is open and joined.
    senders: usize,
    tasks: JoinSet<()>,
}

impl Load {
    /// Connects and joins every member (at most `connect_concurrency` at once) and returns
    /// when all have joined or failed. Members start reading as soon as they have joined, so
    /// the presence frames of later joins never pile up unread.
    pub async fn open(bench: &Arc<Bench>, spec: LoadSpec) -> Load {
        let rooms: Vec<Arc<str>> = (0..spec.rooms)
            .map(|r| Arc::from(format!("{}-r{r}", bench.run_id)))
            .collect();
        // Tracked members per room: each send owes one delivery to each of them.
        let tracked: Arc<[AtomicU64]> = (0..spec.rooms).map(|_| AtomicU64::new(0)).collect();
        let (plan, plan_rx) = watch::channel(Plan {
            rate: 0.0,
            start: Instant::now(),
            count: 0,
        });
        let (slow_mode, slow_rx) = watch::channel(SlowMode::Reading);
        let slow_outcomes = Arc::new(SlowOutcomes::default());
        let finished = Arc::new(Finished::default());
        let attempted = Arc::new(AtomicUsize::new(0));
        let joined_senders = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        let total = spec.rooms * spec.members;
        bench.set_status(format!("joining {total} members to {} rooms", spec.rooms));
        // Member-major order: the first members of every room join before the second ones,
        // so rooms fill evenly and senders exist early.
        for m in 0..spec.members {
            for (r, room) in rooms.iter().enumerate() {
                let role = if m < spec.senders_per_room {
                    Role::Sender
                } else if m >= spec.members - spec.slow_per_room.min(spec.members) {
                    Role::Slow
                } else {
                    Role::Receiver
                };
                let member = Member {
                    bench: bench.clone(),
                    index: bench.next_client(),
                    room: room.clone(),
                    room_index: r,
                    tracked: tracked.clone(),
                };
                // Senders are spread evenly over one period of the schedule: in step, every
                // room's message would land at the same instant and the bench would measure its
                // own thundering herd (10k deliveries at once) instead of a steady load.
                let sender_slot = m * spec.rooms + r;
                let total_senders = (spec.senders_per_room * spec.rooms).max(1);
                let ctx = MemberCtx {
                    phase_offset: sender_slot as f64 / total_senders as f64,
                    plan: plan_rx.clone(),
                    slow: slow_rx.clone(),
                    slow_outcomes: slow_outcomes.clone(),
                    finished: finished.clone(),
                    attempted: attempted.clone(),
                    joined_senders: joined_senders.clone(),
                    rcvbuf: spec.slow_rcvbuf.filter(|_| role == Role::Slow),
                };
                tasks.spawn(member.run(role, ctx));
            }
        }
        while attempted.load(Relaxed) < total {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bench.set_status("letting the server settle after the joins");
        bench.wait_quiet().await;
        Load {
            bench: bench.clone(),
            spec,
            rooms,
            plan,
            slow_mode,
            slow_outcomes,
            finished,
            senders: joined_senders.load(Relaxed),
            tasks,
        }
    }

    /// Messages/s all rooms together receive at `rate_per_room`.
    pub fn offered(&self, rate_per_room: f64) -> f64 {
        rate_per_room * self.spec.rooms as f64
    }

    /// Sends `rate_per_room` messages/s into every room for `secs` seconds, waits for the
    /// deliveries they owe (up to the drain time), and returns the phase's figures.
    pub async fn run_phase(&mut self, label: &str, rate_per_room: f64, secs: f64) -> PhaseStats {
        let per_sender = rate_per_room / self.spec.senders_per_room.max(1) as f64;
        let count = (per_sender * secs).round() as u64;
        let start = Instant::now() + PLAN_LEAD;
        let clock = self
            .bench
            .begin_phase(label.to_owned(), self.offered(rate_per_room), start);
        self.bench.set_status(format!(
            "{label}: {:.0} msgs/s",
            self.offered(rate_per_room)
        ));
        self.finished.count.store(0, Relaxed);
        self.plan.send_replace(Plan {
            rate: per_sender,
            start,
            count,
        });
        tokio::time::sleep_until((start + Duration::from_secs_f64(secs)).into()).await;
        // Senders that fell behind are still writing; give them the drain time to finish.
        let deadline = Instant::now() + self.bench.drain;
        while self.finished.count.load(Relaxed) < self.senders && Instant::now() < deadline {
            let _ =
                tokio::time::timeout(Duration::from_millis(50), self.finished.notify.notified())
                    .await;
        }
        self.bench.set_status(format!("{label}: draining"));
        self.bench.drain_since(&clock).await;
        self.bench.end_phase(clock)
    }

    /// Switches every slow member's behaviour.
    pub fn set_slow_mode(&self, mode: SlowMode) {
        self.slow_mode.send_replace(mode);
    }

    /// Tells slow members to drain, and waits (up to the drain time and a little) until each
    /// has said how its connection ended.
    pub async fn drain_slow(&self, slow_members: u64) {
        self.set_slow_mode(SlowMode::Draining);
        let deadline = Instant::now() + self.bench.drain + Duration::from_secs(1);
        while self.slow_outcomes.finished.load(Relaxed) < slow_members && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends every member task (dropping its connection).
    pub async fn close(mut self) {
        self.bench.set_status("closing");
        self.tasks.shutdown().await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Receiver,
    Sender,
    Slow,
}

/// One member's identity and what it reports to.
struct Member {
    bench: Arc<Bench>,
    index: usize,
    room: Arc<str>,
    room_index: usize,
    tracked: Arc<[AtomicU64]>,
}

/// The channels a member listens to.
struct MemberCtx {
    /// Where in each send period this sender's messages fall, as a fraction of the period.
    phase_offset: f64,
    plan: watch::Receiver<Plan>,
    slow: watch::Receiver<SlowMode>,
    slow_outcomes: Arc<SlowOutcomes>,
    finished: Arc<Finished>,
    attempted: Arc<AtomicUsize>,
    joined_senders: Arc<AtomicUsize>,
    rcvbuf: Option<u32>,
}

impl Member {
    async fn run(self, role: Role, ctx: MemberCtx) {
        let joined = {
            let _slot = self
                .bench
                .connect_slots
                .acquire()
                .await
                .expect("never closed");
            let name = format!("b{}", self.index);
            self.bench
                .connector
                .connect_and_join(self.index, &name, &self.room, ctx.rcvbuf)
                .await
        };
        let (client, joined) = match joined {
            Ok(ok) => ok,
            Err(err) => {
                self.bench.connect_failed(&err);
                ctx.attempted.fetch_add(1, Relaxed);
                return;
            }
        };
        self.bench.counters.connected.fetch_add(1, Relaxed);
        if role != Role::Slow {
            self.tracked[self.room_index].fetch_add(1, Relaxed);
        }
        if role == Role::Sender {
            ctx.joined_senders.fetch_add(1, Relaxed);
        }
        ctx.attempted.fetch_add(1, Relaxed);
        let receiver = Receiver::new(
            self.bench.clone(),
            self.index,
            self.room.clone(),
            joined.last_seq,
        );
        match role {
            Role::Receiver => receive(client, receiver).await,
            Role::Sender => {
                self.send(client, receiver, ctx.plan, ctx.finished, ctx.phase_offset)
                    .await
            }
            Role::Slow => stall(client, ctx.slow, &ctx.slow_outcomes, self.bench.drain).await,
        }
    }

    /// Receives like any member and, when a plan says so, sends on its schedule.
    async fn send(
        &self,
        mut client: Client,
        mut receiver: Receiver,
        mut plans: watch::Receiver<Plan>,
        finished: Arc<Finished>,
        phase_offset: f64,
    ) {
        let sender = self.index as u32;
        // The k-th message of a plan is due at start + (k + phase_offset) / rate.
        let due_at = |plan: &Plan, k: u64| {
            plan.start + Duration::from_secs_f64((k as f64 + phase_offset) / plan.rate)
        };
        let mut plan = *plans.borrow_and_update();
        let mut k = 0u64; // messages of this plan sent
        let mut n = 0u64; // messages of this connection sent: numbers, client_ids
        loop {
            let due = (k < plan.count).then(|| due_at(&plan, k));
            tokio::select! {
                // Sending first: an inbound flood must not delay the schedule.
                biased;
                changed = plans.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    plan = *plans.borrow_and_update();
                    k = 0;
                    if plan.count == 0 {
                        finished.arrive();
                    }
                }
                () = sleep_until(due) => {
                    let now = Instant::now();
                    let sent_ns = stamp::ns_at(now);
                    let members = self.tracked[self.room_index].load(Relaxed);
                    // Everything due by now goes out in one burst and one flush.
                    while k < plan.count {
                        let at = due_at(&plan, k);
                        if at > now {
                            break;
                        }
                        let lag_us = now.saturating_duration_since(at).as_micros() as u64;
                        self.bench.send_lag.record(self.index, lag_us);
                        let text = Stamp { sender, n, sent_ns }.encode();
                        let client_id = crate::client_ids::client_id(sender, n);
                        let frame = ClientFrame::Send { room: &self.room, text: &text, client_id: &client_id };
                        if client.queue(&frame).await.is_err() {
                            break;
                        }
                        k += 1;
                        n += 1;
                        self.bench.counters.sent.fetch_add(1, Relaxed);
                        self.bench.counters.expected.fetch_add(members, Relaxed);
                    }
                    let flushed = client.flush().await;
                    if k == plan.count {
                        finished.arrive();
                    }
                    if flushed.is_err() {
                        self.bench.counters.closed_other.fetch_add(1, Relaxed);
                        return;
                    }
                }
                incoming = client.recv() => {
                    // Sends win every race above, so read everything already buffered while
                    // here: one frame per loop would let a busy sender fall behind its own
                    // room and be cut off by the server (4001) as a slow reader.
                    let mut open = receiver.on(incoming);
                    for _ in 0..READ_BURST {
                        match client.recv().now_or_never() {
                            Some(more) if open => open = receiver.on(more),
                            _ => break,
                        }
                    }
                    if !open {
                        if k < plan.count {
                            finished.arrive();
                        }
                        return;
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Reads until the connection ends.
async fn receive(mut client: Client, mut receiver: Receiver) {
    while receiver.on(client.recv().await) {}
}

/// A slow member: reads while told to, then stops reading; when told to drain, reads what is
/// left until the connection ends or goes quiet, and records how it ended.
async fn stall(
    mut client: Client,
    mut mode: watch::Receiver<SlowMode>,
    outcomes: &SlowOutcomes,
    quiet: Duration,
) {
    loop {
        let current = *mode.borrow_and_update();
        match current {
            SlowMode::Reading => {
                tokio::select! {
                    changed = mode.changed() => if changed.is_err() { return },
                    incoming = client.recv() => if !matches!(incoming, Incoming::Text(_)) {
                        // Ended while still reading: not the slow policy at work.
                        record_slow_end(outcomes, &incoming);
                        return;
                    },
                }
            }
            SlowMode::Stalled => {
                if mode.changed().await.is_err() {
                    return;
                }
            }
            SlowMode::Draining => {
                loop {
                    match tokio::time::timeout(quiet, client.recv()).await {
                        Ok(Incoming::Text(_)) => continue,
                        Ok(end) => {
                            record_slow_end(outcomes, &end);
                            return;
                        }
                        Err(_) => {
                            outcomes.still_open.fetch_add(1, Relaxed);
                            outcomes.finished.fetch_add(1, Relaxed);
                            // Park: the connection stays open until the load closes.
                            std::future::pending::<()>().await;
                        }
                    }
                }
            }
        }
    }
}

fn record_slow_end(outcomes: &SlowOutcomes, end: &Incoming) {
    let counter = match end {
        Incoming::Closed(Some(4001)) => &outcomes.closed_4001,
        _ => &outcomes.closed_other,
    };
    counter.fetch_add(1, Relaxed);
    outcomes.finished.fetch_add(1, Relaxed);
}

/// The receiving half every tracked member shares: seq checks, latency, close codes.
pub struct Receiver {
    bench: Arc<Bench>,
    shard: usize,
    room: Arc<str>,
    seqs: SeqTracker,
}

impl Receiver {
    pub fn new(bench: Arc<Bench>, shard: usize, room: Arc<str>, last_seq: u64) -> Self {
        Receiver {
            bench,
            shard,
            room,
            seqs: SeqTracker::new(last_seq),
        }
    }

    /// Handles one thing read; returns false once the connection has ended.
    pub fn on(&mut self, incoming: Incoming) -> bool {
        let counters = &self.bench.counters;
        match incoming {
            Incoming::Text(text) => {
                self.on_text(&text);
                true
            }
            Incoming::Closed(code) => {
                let counter = match code {
                    Some(4001) => &counters.closed_4001,
                    _ => &counters.closed_other,
                };
                counter.fetch_add(1, Relaxed);
                let how = code.map_or("close without a code".to_owned(), |c| c.to_string());
                self.bench.connection_ended(how);
                false
            }
            Incoming::Broken(why) => {
                counters.closed_other.fetch_add(1, Relaxed);
                self.bench
                    .connection_ended(format!("no close frame: {why}"));
                false
            }
        }
    }

    fn on_text(&mut self, text: &str) {
        if let Some(message) = scan_message(text) {
            self.on_message(message.room, Some(message.seq), Some(message.text));
            return;
        }
        let counters = &self.bench.counters;
        let Ok(frame) = ServerFrame::parse(text) else {
            counters.error_frames.fetch_add(1, Relaxed);
            return;
        };
        match frame.kind.as_ref() {
            "message" => self.on_message(
                frame.room.as_deref().unwrap_or_default(),
                frame.seq,
                frame.text.as_deref(),
            ),
            "error" => {
                counters.error_frames.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }

    fn on_message(&mut self, room: &str, seq: Option<u64>, text: Option<&str>) {
        let counters = &self.bench.counters;
        if room != &*self.room {
            return;
        }
        let Some(seq) = seq else {
            counters.error_frames.fetch_add(1, Relaxed);
            return;
        };
        match self.seqs.record(seq) {
            Seen::Duplicate => {
                counters.duplicated.fetch_add(1, Relaxed);
                return;
            }
            Seen::NewOutOfOrder => {
                counters.out_of_order.fetch_add(1, Relaxed);
            }
            Seen::New => {}
        }
        counters.received.fetch_add(1, Relaxed);
        if let Some(stamp) = text.and_then(Stamp::parse) {
            let micros = stamp::now_ns().saturating_sub(stamp.sent_ns) / 1000;
            self.bench.latencies.record(self.shard, micros);
            let connector = &self.bench.connector;
            if connector.node_of(stamp.sender as usize) != connector.node_of(self.shard) {
                self.bench.cross_node.record(self.shard, micros);
            }
        }
    }
}
