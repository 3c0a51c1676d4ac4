//! `burst`: issue 8's burst. One room; a member that joins and then reads nothing (stalled),
//! `--readers` members that read all the time (optionally only `--reader-rate` messages/s),
//! and one sender that floods `--messages` messages of `--text-len` characters as fast as its
//! socket takes them while it reads its own echoes.
//!
//! The promise under test (docs/protocol.md): a member that keeps reading receives every
//! message, in order, maybe late; only a connection that makes no write progress for the
//! server's `--stall-timeout` is closed, with 4001. The report says, per member, how many of
//! the messages it got, whether in order, and how its connection ended; the stalled member
//! reads nothing for `--stall-secs` from the first send, then reads what is left and says
//! whether it got everything or how (and when, as the bench saw it) it was closed.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::load::Receiver;
use super::{Bench, Outcome};
use crate::cli::BurstArgs;
use crate::client::{Client, Incoming};
use crate::metrics::{Seen, SeqTracker};
use crate::protocol::{ClientFrame, scan_message};
use crate::report::Facts;
use crate::stamp::{self, Stamp};

/// How often the stalled member looks at its socket's TCP state.
const STALL_POLL: Duration = Duration::from_millis(100);

/// What one member saw of the flood.
#[derive(Debug, Clone, Serialize)]
struct MemberOutcome {
    role: &'static str,
    received: u64,
    expected: u64,
    duplicated: u64,
    out_of_order: u64,
    /// Every message, once, in order.
    complete_in_order: bool,
    /// How the connection ended: "open" if it did not.
    ended: String,
    /// Seconds from the first send to the last message received (or to the end it saw).
    secs: f64,
    /// Stalled member only: seconds from the first send until its kernel saw the server end
    /// the connection (FIN or reset), polled every 100 ms while it read nothing. `None` if it
    /// did not happen while stalled, or if the FIN could not arrive (a full receive buffer).
    #[serde(skip_serializing_if = "Option::is_none")]
    server_closed_secs: Option<f64>,
    /// Stalled member only: seconds from the first send until the last time unread bytes
    /// arrived at its socket while it read nothing (a close frame sent after the server's
    /// stall timeout shows here), and how many bytes were then waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_arrival_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unread_bytes_at_wake: Option<u64>,
}

pub async fn run(bench: &Arc<Bench>, args: &BurstArgs) -> anyhow::Result<Outcome> {
    let params = json!({
        "readers": args.readers, "messages": args.messages, "text_len": args.text_len,
        "reader_rate": args.reader_rate, "stall_secs": args.stall_secs,
        "stalled_rcvbuf": args.stalled_rcvbuf, "timeout": args.timeout,
    });
    anyhow::ensure!(args.messages > 0, "--messages must be at least 1");
    let room: Arc<str> = Arc::from(format!("{}-burst", bench.run_id));
    bench.set_status("burst: joining");
    let stalled = join(bench, &room, args.stalled_rcvbuf).await?;
    let mut readers = Vec::with_capacity(args.readers);
    for _ in 0..args.readers {
        readers.push(join(bench, &room, None).await?);
    }
    let sender = join(bench, &room, None).await?;
    let tracked = args.readers as u64 + 1;

    let start = Instant::now();
    let clock = bench.begin_phase("burst".to_owned(), 0.0, start);
    bench.set_status(format!("burst: flooding {} messages", args.messages));
    let deadline = start + Duration::from_secs_f64(args.timeout);
    let mut tasks = Vec::new();
    for (index, client, last_seq) in readers {
        let member = Watch::new(bench, index, &room, last_seq, args.messages, start);
        let pace =
            (args.reader_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.reader_rate));
        tasks.push(tokio::spawn(read_all(member, client, pace, deadline)));
    }
    let (sender_index, sender_client, sender_seq) = sender;
    let (mut writer, mut reader) = sender_client.split();
    let echo = Watch::new(bench, sender_index, &room, sender_seq, args.messages, start);
    let echoes = tokio::spawn(async move {
        let mut member = echo;
        while !member.done() {
            let incoming = tokio::select! {
                incoming = reader.recv() => incoming,
                () = tokio::time::sleep_until(deadline.into()) => break,
            };
            if !member.on(incoming) {
                break;
            }
        }
        member.finish("sender")
    });
    let padding = "x".repeat(args.text_len);
    let mut flood_error = None;
    for n in 0..args.messages {
        let mut text = Stamp {
            sender: sender_index as u32,
            n,
            sent_ns: stamp::now_ns(),
        }
        .encode();
        text.push(':');
        let stamp_len = text.chars().count();
        text.push_str(&padding[..args.text_len.saturating_sub(stamp_len)]);
        let client_id = format!("c{n}");
        let frame = ClientFrame::Send {
            room: &room,
            text: &text,
            client_id: &client_id,
        };
        if let Err(err) = writer.queue(&frame).await {
            flood_error = Some(format!("{err:#}"));
            break;
        }
        bench.counters.sent.fetch_add(1, Relaxed);
        bench.counters.expected.fetch_add(tracked, Relaxed);
    }
    if flood_error.is_none()
        && let Err(err) = writer.flush().await
    {
        flood_error = Some(format!("{err:#}"));
    }
    let flood_secs = start.elapsed().as_secs_f64();
    bench.set_status("burst: readers catching up");
    let mut outcomes = vec![echoes.await?];
    for task in tasks {
        outcomes.push(task.await?);
    }
    let phase = bench.end_phase(clock);

    bench.set_status("burst: stalled member waits, then reads");
    let (stalled_index, stalled_client, stalled_seq) = stalled;
    let member = Watch::new(
        bench,
        stalled_index,
        &room,
        stalled_seq,
        args.messages,
        start,
    );
    let wake = start + Duration::from_secs_f64(args.stall_secs);
    let stalled_outcome = drain_stalled(member, stalled_client, wake, bench.drain).await;
    // Keep the writer (and its socket) until the end: closing the sender early would change
    // what the others receive.
    drop(writer);

    let mut facts = Facts::default();
    let readers_ok = outcomes.iter().filter(|o| o.complete_in_order).count();
    facts.add("flood seconds (sender's writes)", flood_secs);
    if let Some(err) = flood_error {
        facts.add("flood error", err);
    }
    facts.add(
        "reading members with every message in order",
        format!("{readers_ok} of {}", outcomes.len()),
    );
    facts.add("reading members complete", readers_ok as u64);
    let last = outcomes.iter().map(|o| o.secs).fold(0.0, f64::max);
    facts.add("seconds until the last reader had everything", last);
    facts.add(
        "stalled member",
        describe_stalled(&stalled_outcome, args.messages, args.stall_secs),
    );
    facts.add("stalled member received", stalled_outcome.received);
    outcomes.push(stalled_outcome);
    facts.add("members", json!(outcomes));
    let mut notes = vec![format!(
        "the stalled member read nothing for {} s from the first send; a server with \
         --stall-timeout T should close it with 4001 after about T s without write progress, \
         or deliver everything. Its close frame is read only when it reads again ('secs'); \
         'last_arrival_secs' is when bytes last reached its socket while it read nothing (a close \
         frame sent after a stall timeout shows there), 'server_closed_secs' when its kernel saw \
         the TCP connection end (only if the FIN could arrive)",
        args.stall_secs
    )];
    let stalled = outcomes.last().filter(|o| o.role == "stalled");
    if let Some(stalled) = stalled
        && !stalled.complete_in_order
        && stalled.ended != "close 4001"
    {
        notes.push(
            "the stalled member neither got every message nor a 4001 close (issue 8's target)"
                .to_owned(),
        );
    }
    if readers_ok < outcomes.len() - 1 {
        notes.push("a member that kept reading did not get every message in order".to_owned());
    }
    Ok(("burst", params, vec![phase], facts, notes))
}

/// Connects and joins one member of the room: (client number, client, `joined.last_seq`).
async fn join(
    bench: &Arc<Bench>,
    room: &str,
    rcvbuf: Option<u32>,
) -> anyhow::Result<(usize, Client, u64)> {
    let index = bench.next_client();
    match bench
        .connector
        .connect_and_join(index, &format!("b{index}"), room, rcvbuf)
        .await
    {
        Ok((client, joined)) => {
            bench.counters.connected.fetch_add(1, Relaxed);
            Ok((index, client, joined.last_seq))
        }
        Err(err) => {
            bench.connect_failed(&err);
            anyhow::bail!("burst: a member could not join: {err}")
        }
    }
}

/// One member's view of the flood: its own seq check on top of the shared [`Receiver`].
struct Watch {
    receiver: Option<Receiver>,
    seqs: SeqTracker,
    room: Arc<str>,
    received: u64,
    duplicated: u64,
    out_of_order: u64,
    expected: u64,
    start: Instant,
    last_at: Option<Instant>,
    ended: Option<String>,
}

impl Watch {
    fn new(
        bench: &Arc<Bench>,
        index: usize,
        room: &Arc<str>,
        last_seq: u64,
        expected: u64,
        start: Instant,
    ) -> Watch {
        Watch {
            receiver: Some(Receiver::new(bench.clone(), index, room.clone(), last_seq)),
            seqs: SeqTracker::new(last_seq),
            room: room.clone(),
            received: 0,
            duplicated: 0,
            out_of_order: 0,
            expected,
            start,
            last_at: None,
            ended: None,
        }
    }

    /// A member that is not tracked in the shared counters (the stalled one).
    fn untracked(mut self) -> Watch {
        self.receiver = None;
        self
    }

    fn done(&self) -> bool {
        self.received >= self.expected
    }

    /// Handles one read; false once the connection ended.
    fn on(&mut self, incoming: Incoming) -> bool {
        match &incoming {
            Incoming::Text(text) => {
                if let Some(message) = scan_message(text)
                    && message.room == &*self.room
                {
                    match self.seqs.record(message.seq) {
                        Seen::New => self.received += 1,
                        Seen::NewOutOfOrder => {
                            self.received += 1;
                            self.out_of_order += 1;
                        }
                        Seen::Duplicate => self.duplicated += 1,
                    }
                    self.last_at = Some(Instant::now());
                }
            }
            Incoming::Closed(code) => {
                self.ended =
                    Some(code.map_or("close without a code".to_owned(), |c| format!("close {c}")));
                self.last_at = Some(Instant::now());
            }
            Incoming::Broken(why) => {
                self.ended = Some(format!("no close frame: {why}"));
                self.last_at = Some(Instant::now());
            }
        }
        let open = self.ended.is_none();
        if let Some(receiver) = self.receiver.as_mut() {
            receiver.on(incoming);
        }
        open
    }

    fn finish(self, role: &'static str) -> MemberOutcome {
        MemberOutcome {
            role,
            received: self.received,
            expected: self.expected,
            duplicated: self.duplicated,
            out_of_order: self.out_of_order,
            complete_in_order: self.received == self.expected
                && self.duplicated == 0
                && self.out_of_order == 0,
            ended: self.ended.unwrap_or_else(|| "open".to_owned()),
            secs: self
                .last_at
                .map_or(0.0, |at| at.duration_since(self.start).as_secs_f64()),
            server_closed_secs: None,
            last_arrival_secs: None,
            unread_bytes_at_wake: None,
        }
    }
}

/// A reading member: reads until it has every message, its connection ends, or the deadline;
/// with `pace`, at most one message per `pace`.
async fn read_all(
    mut member: Watch,
    mut client: Client,
    pace: Option<Duration>,
    deadline: Instant,
) -> MemberOutcome {
    let mut next = Instant::now();
    while !member.done() {
        if let Some(pace) = pace {
            tokio::time::sleep_until(next.into()).await;
            next += pace;
        }
        let incoming = tokio::select! {
            incoming = client.recv() => incoming,
            () = tokio::time::sleep_until(deadline.into()) => break,
        };
        if !member.on(incoming) {
            break;
        }
    }
    let outcome = member.finish("reader");
    client.close().await;
    outcome
}

/// The stalled member: nothing until `wake`, then reads until it has everything, its
/// connection ends, or nothing arrives for `quiet`.
async fn drain_stalled(
    member: Watch,
    mut client: Client,
    wake: Instant,
    quiet: Duration,
) -> MemberOutcome {
    let mut member = member.untracked();
    let mut closed_at = None;
    let (mut unread, mut arrived_at) = (0, None);
    while Instant::now() < wake {
        if closed_at.is_none() && client.peer_closed() {
            closed_at = Some(member.start.elapsed().as_secs_f64());
        }
        if let Some(now) = client.unread_bytes()
            && now > unread
        {
            (unread, arrived_at) = (now, Some(member.start.elapsed().as_secs_f64()));
        }
        tokio::time::sleep(STALL_POLL.min(wake.saturating_duration_since(Instant::now()))).await;
    }
    while !member.done() {
        match tokio::time::timeout(quiet, client.recv()).await {
            Ok(incoming) => {
                if !member.on(incoming) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let mut outcome = member.finish("stalled");
    outcome.server_closed_secs = closed_at;
    outcome.last_arrival_secs = arrived_at;
    outcome.unread_bytes_at_wake = Some(unread);
    client.close().await;
    outcome
}

fn describe_stalled(outcome: &MemberOutcome, messages: u64, stall_secs: f64) -> String {
    let order = if outcome.duplicated == 0 && outcome.out_of_order == 0 {
        "in order"
    } else {
        "NOT in order"
    };
    if outcome.complete_in_order {
        format!("got all {messages} in order after reading again at {stall_secs} s")
    } else if outcome.ended == "open" {
        format!(
            "got {} of {messages} ({order}); still open, nothing more arrived",
            outcome.received
        )
    } else {
        let mut when = match outcome.server_closed_secs {
            Some(secs) => format!("the server ended the TCP connection at {secs:.1} s"),
            None => "no TCP end seen while stalled".to_owned(),
        };
        if let Some(secs) = outcome.last_arrival_secs {
            let _ = write!(when, "; the last bytes arrived at {secs:.1} s");
        }
        let _ = write!(when, "; read at {:.1} s from the first send", outcome.secs);
        format!(
            "got {} of {messages} ({order}), then {} ({when})",
            outcome.received, outcome.ended
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(expected: u64) -> Watch {
        Watch {
            receiver: None,
            seqs: SeqTracker::new(10),
            room: Arc::from("r"),
            received: 0,
            duplicated: 0,
            out_of_order: 0,
            expected,
            start: Instant::now(),
            last_at: None,
            ended: None,
        }
    }

    fn message(seq: u64) -> Incoming {
        Incoming::Text(
            format!(r#"{{"type":"message","room":"r","seq":{seq},"id":"m","ts":0,"user":{{"id":"u","name":"n"}},"text":"b:1:{seq}:0:xx"}}"#)
                .into(),
        )
    }

    #[test]
    fn a_member_with_every_message_once_in_order_is_complete() {
        let mut member = watch(3);
        for seq in 11..=13 {
            assert!(member.on(message(seq)));
        }
        assert!(member.done());
        let outcome = member.finish("reader");
        assert!(outcome.complete_in_order);
        assert_eq!(outcome.ended, "open");
    }

    #[test]
    fn a_gap_a_repeat_or_a_reordering_is_not_complete_and_a_4001_is_reported() {
        let mut member = watch(3);
        assert!(member.on(message(12)));
        assert!(member.on(message(11)));
        assert!(member.on(message(11)));
        assert!(!member.on(Incoming::Closed(Some(4001))));
        let outcome = member.finish("stalled");
        assert_eq!(
            (outcome.received, outcome.duplicated, outcome.out_of_order),
            (2, 1, 1)
        );
        assert!(!outcome.complete_in_order);
        assert_eq!(outcome.ended, "close 4001");
        let said = describe_stalled(&outcome, 3, 25.0);
        assert!(
            said.starts_with("got 2 of 3 (NOT in order), then close 4001"),
            "{said}"
        );
    }

    #[test]
    fn messages_of_other_rooms_do_not_count() {
        let mut member = watch(1);
        let other = r#"{"type":"message","room":"x","seq":11,"id":"m","ts":0,"user":{"id":"u","name":"n"},"text":"b:1:1:0"}"#;
        assert!(member.on(Incoming::Text(other.into())));
        assert_eq!(member.received, 0);
    }
}
