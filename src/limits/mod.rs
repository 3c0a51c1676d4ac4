//! Rate limits: token buckets per user (across all of a user's connections) and per client IP,
//! checked before a request has any effect. See the "Limits" section of `docs/protocol.md`.
//!
//! Who pays: a signed-in user pays from their own buckets; an anonymous connection (`/ws?name=`
//! without a session, which mints a new user id on every connect) pays from its IP's buckets,
//! so reconnecting never buys a fresh burst. Creating rooms and sessions is also paid per IP,
//! so minting many users does not multiply them.
//!
//! A connection that keeps sending after being refused is closed with 1008: refusals go
//! through a bucket of their own, and a client that honours `retry_after_ms` never empties it.

mod rate;

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, RateLimiter};

pub use rate::{BadRate, Rate};

use crate::config::{Config, RateLimits};
use crate::domain::{RoomName, UserId};
use crate::protocol::client::ClientFrame;
use crate::rooms::hub::Hub;
use crate::store::Store;

/// How often idle keys are dropped from the buckets' maps (which never shrink by themselves).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The defaults, shared by the command line and `Config::ephemeral`.
pub mod defaults {
    /// A lively chat: 10 messages at once, then one every half second.
    pub const SEND: &str = "10+2/s";
    /// Opening a page of rooms at once, then one a second.
    pub const JOIN: &str = "30+1/s";
    /// Scrolling back through history quickly.
    pub const HISTORY: &str = "20+4/s";
    /// Paging through a big room's member list.
    pub const MEMBERS: &str = "20+4/s";
    /// The lobby asks once per page load.
    pub const ROOMS: &str = "10+1/s";
    /// Rooms a user (or an anonymous IP) brings into being.
    pub const ROOM_CREATE: &str = "10+1/min";
    /// Rooms brought into being from one IP, whoever the users.
    pub const ROOM_CREATE_IP: &str = "30+10/min";
    /// New guest sessions (`POST /api/session` without a session) from one IP.
    pub const SESSION_IP: &str = "20+20/min";
    /// Sign-in and registration attempts from one IP.
    pub const SIGN_IN_IP: &str = "20+20/min";
    /// Sign-in and registration attempts on one username: a password guesser gets ten tries,
    /// then one every ten seconds.
    pub const SIGN_IN_USER: &str = "10+6/min";
    /// Refused requests a connection may make before it is closed with 1008.
    pub const REFUSALS: &str = "20+1/s";
}

/// A request that costs a token from the caller's own bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Send,
    Join,
    History,
    Members,
    Rooms,
    RoomCreate,
}

impl Kind {
    /// The bucket a client frame pays from; `None` for frames that are never limited (`leave`
    /// frees resources, `ping` is the keepalive). The `members` frame pays from
    /// [`Kind::Members`] (its arm comes with the frame).
    pub fn of(frame: &ClientFrame) -> Option<Self> {
        match frame {
            // Every change to a room is paid from the same bucket as a message.
            ClientFrame::Send { .. }
            | ClientFrame::Delete { .. }
            | ClientFrame::Edit { .. }
            | ClientFrame::React { .. } => Some(Self::Send),
            ClientFrame::Join { .. } => Some(Self::Join),
            // Searching reads like paging back through history, and pays like it.
            ClientFrame::History { .. } | ClientFrame::Search { .. } => Some(Self::History),
            // Watching the admin view is a subscription like the lobby's.
            ClientFrame::Rooms | ClientFrame::AdminWatch => Some(Self::Rooms),
            ClientFrame::Members { .. } => Some(Self::Members),
            // Typing is throttled where it is fanned out (one per user per room per 2 s), and
            // the surplus is dropped: it is lossy by design.
            ClientFrame::Leave { .. }
            | ClientFrame::Ping
            | ClientFrame::Typing { .. }
            | ClientFrame::AdminUnwatch => None,
            // Read markers follow scrolling; they pay like paging through history.
            ClientFrame::Read { .. } => Some(Self::History),
        }
    }

    /// The `action` label of `confab_rate_limited_total`.
    fn label(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Join => "join",
            Self::History => "history",
            Self::Members => "members",
            Self::Rooms => "rooms",
            Self::RoomCreate => "room_create",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Join => "join",
            Self::History => "history",
            Self::Members => "members",
            Self::Rooms => "rooms",
            Self::RoomCreate => "room creation",
        }
    }
}

/// A request paid per client IP, whoever the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpKind {
    RoomCreate,
    Session,
    SignIn,
}

/// Whose buckets a connection pays from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Payer {
    User(UserId),
    Anonymous(IpAddr),
}

/// How long to wait before the request would be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(Duration);

impl RetryAfter {
    /// Whole milliseconds, rounded up so a client that waits exactly this long succeeds.
    pub fn millis(self) -> u64 {
        let nanos = self.0.as_nanos();
        u64::try_from(nanos.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

/// Every bucket of the server. `None` when `--rate-limits off`.
pub struct Limits(Option<Buckets>);

struct Buckets {
    send: DefaultKeyedRateLimiter<Payer>,
    join: DefaultKeyedRateLimiter<Payer>,
    history: DefaultKeyedRateLimiter<Payer>,
    members: DefaultKeyedRateLimiter<Payer>,
    rooms: DefaultKeyedRateLimiter<Payer>,
    room_create: DefaultKeyedRateLimiter<Payer>,
    room_create_ip: DefaultKeyedRateLimiter<IpAddr>,
    session_ip: DefaultKeyedRateLimiter<IpAddr>,
    sign_in_ip: DefaultKeyedRateLimiter<IpAddr>,
    sign_in_user: DefaultKeyedRateLimiter<String>,
    refusals: Rate,
    clock: DefaultClock,
}

impl Limits {
    /// The server's buckets, per the configuration. Inside a tokio runtime this also starts
    /// the sweep that forgets idle keys; it ends when the `Limits` is dropped.
    pub fn new(config: &Config) -> Arc<Self> {
        let limits = Arc::new(Self::from_config(config));
        if limits.0.is_some()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(sweep(Arc::downgrade(&limits)));
        }
        limits
    }

    fn from_config(config: &Config) -> Self {
        if config.rate_limits == RateLimits::Off {
            return Self(None);
        }
        fn keyed<K: Hash + Eq + Clone>(rate: Rate) -> DefaultKeyedRateLimiter<K> {
            RateLimiter::keyed(rate.quota())
        }
        Self(Some(Buckets {
            send: keyed(config.limit_send),
            join: keyed(config.limit_join),
            history: keyed(config.limit_history),
            members: keyed(config.limit_members),
            rooms: keyed(config.limit_rooms),
            room_create: keyed(config.limit_room_create),
            room_create_ip: keyed(config.limit_room_create_ip),
            session_ip: keyed(config.limit_session_ip),
            sign_in_ip: keyed(config.limit_sign_in_ip),
            sign_in_user: keyed(config.limit_sign_in_user),
            refusals: config.limit_refusals,
            clock: DefaultClock::default(),
        }))
    }

    /// Takes a token from `payer`'s bucket for `kind`.
    pub fn check(&self, kind: Kind, payer: &Payer) -> Result<(), RetryAfter> {
        let Some(buckets) = &self.0 else {
            return Ok(());
        };
        let bucket = match kind {
            Kind::Send => &buckets.send,
            Kind::Join => &buckets.join,
            Kind::History => &buckets.history,
            Kind::Members => &buckets.members,
            Kind::Rooms => &buckets.rooms,
            Kind::RoomCreate => &buckets.room_create,
        };
        buckets.take(bucket, payer, kind.label())
    }

    /// Takes a token from `ip`'s bucket for `kind`.
    pub fn check_ip(&self, kind: IpKind, ip: IpAddr) -> Result<(), RetryAfter> {
        let Some(buckets) = &self.0 else {
            return Ok(());
        };
        let (bucket, label) = match kind {
            IpKind::RoomCreate => (&buckets.room_create_ip, "room_create_ip"),
            IpKind::Session => (&buckets.session_ip, "session_ip"),
            IpKind::SignIn => (&buckets.sign_in_ip, "sign_in_ip"),
        };
        buckets.take(bucket, &ip, label)
    }

    /// Takes a token from the sign-in bucket of `username` (lowercase), whoever is trying.
    pub fn check_username(&self, username: &str) -> Result<(), RetryAfter> {
        let Some(buckets) = &self.0 else {
            return Ok(());
        };
        buckets.take(&buckets.sign_in_user, &username.to_owned(), "sign_in_user")
    }

    fn sweep_once(&self) {
        if let Some(buckets) = &self.0 {
            buckets.send.retain_recent();
            buckets.join.retain_recent();
            buckets.history.retain_recent();
            buckets.members.retain_recent();
            buckets.rooms.retain_recent();
            buckets.room_create.retain_recent();
            buckets.room_create_ip.retain_recent();
            buckets.session_ip.retain_recent();
            buckets.sign_in_ip.retain_recent();
            buckets.sign_in_user.retain_recent();
        }
    }
}

impl Buckets {
    fn take<K: Hash + Eq + Clone>(
        &self,
        bucket: &DefaultKeyedRateLimiter<K>,
        key: &K,
        action: &'static str,
    ) -> Result<(), RetryAfter> {
        bucket.check_key(key).map_err(|not_until| {
            crate::telemetry::metrics::rate_limited(action);
            RetryAfter(not_until.wait_time_from(self.clock.now()))
        })
    }
}

async fn sweep(limits: Weak<Limits>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(limits) = limits.upgrade() else {
            return;
        };
        limits.sweep_once();
    }
}

/// Why a request was refused, and whether the connection has now gone too far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub kind: Kind,
    pub retry_after: RetryAfter,
    /// The connection kept going well past its limits: close it with 1008.
    pub close: bool,
}

impl Refusal {
    pub fn message(&self) -> String {
        format!(
            "too many {} requests; nothing was done, retry after {} ms",
            self.kind.name(),
            self.retry_after.millis()
        )
    }
}

/// One connection's view of the limits: who pays, from which IP, and its refusals so far.
pub struct Connection {
    limits: Arc<Limits>,
    payer: Payer,
    ip: IpAddr,
    refusals: Option<DefaultDirectRateLimiter>,
}

impl Connection {
    pub fn new(limits: Arc<Limits>, payer: Payer, ip: IpAddr) -> Self {
        let refusals = limits
            .0
            .as_ref()
            .map(|buckets| RateLimiter::direct(buckets.refusals.quota()));
        Self {
            limits,
            payer,
            ip,
            refusals,
        }
    }

    /// Admits `frame` or says why not. A `join` of a room nobody is in and nothing was ever
    /// said in brings that room into being, so it also pays for room creation (per payer and
    /// per IP); finding that out costs one store read, only for such joins.
    pub async fn admit(
        &self,
        frame: &ClientFrame,
        hub: &Hub,
        store: &dyn Store,
    ) -> Result<(), Refusal> {
        let Some(kind) = Kind::of(frame) else {
            return Ok(());
        };
        if self.limits.0.is_none() {
            return Ok(());
        }
        let mut outcome = self.limits.check(kind, &self.payer).map_err(|r| (kind, r));
        if outcome.is_ok()
            && let ClientFrame::Join { room, .. } = frame
            && is_new_room(room, hub, store).await
        {
            outcome = self
                .limits
                .check(Kind::RoomCreate, &self.payer)
                .and_then(|()| self.limits.check_ip(IpKind::RoomCreate, self.ip))
                .map_err(|r| (Kind::RoomCreate, r));
        }
        outcome.map_err(|(kind, retry_after)| Refusal {
            kind,
            retry_after,
            close: self.refused_too_often(),
        })
    }

    /// Counts a refusal; true once the connection has spent its allowance of them.
    fn refused_too_often(&self) -> bool {
        self.refusals
            .as_ref()
            .is_some_and(|refusals| refusals.check().is_err())
    }
}

/// A room with nobody in it (on any node) and no stored message.
async fn is_new_room(room: &RoomName, hub: &Hub, store: &dyn Store) -> bool {
    if hub.online(room) > 0 {
        return false;
    }
    match store.latest(room, 1).await {
        Ok(page) => page.messages.is_empty(),
        // The join itself will meet the same failure and say so; do not also refuse it here.
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(adjust: impl FnOnce(&mut Config)) -> Config {
        let mut config = Config::ephemeral("unused");
        adjust(&mut config);
        config
    }

    #[test]
    fn a_bucket_admits_its_burst_then_refuses_with_a_wait() {
        let limits = Limits::from_config(&config(|c| c.limit_send = "3+1/s".parse().unwrap()));
        let ann = Payer::User(UserId::generate());
        for _ in 0..3 {
            assert!(limits.check(Kind::Send, &ann).is_ok());
        }
        let retry = limits.check(Kind::Send, &ann).unwrap_err();
        assert!(retry.millis() > 0 && retry.millis() <= 1000, "{retry:?}");
        // Another user, and another kind of request, have buckets of their own.
        assert!(
            limits
                .check(Kind::Send, &Payer::User(UserId::generate()))
                .is_ok()
        );
        assert!(limits.check(Kind::Join, &ann).is_ok());
    }

    #[test]
    fn off_lifts_every_bucket() {
        let limits = Limits::from_config(&config(|c| {
            c.rate_limits = RateLimits::Off;
            c.limit_send = "1+1/h".parse().unwrap();
            c.limit_session_ip = "1+1/h".parse().unwrap();
        }));
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..100 {
            assert!(limits.check(Kind::Send, &Payer::Anonymous(ip)).is_ok());
            assert!(limits.check_ip(IpKind::Session, ip).is_ok());
        }
    }

    #[test]
    fn refusals_beyond_the_allowance_ask_for_a_close() {
        let limits = Arc::new(Limits::from_config(&config(|c| {
            c.limit_refusals = "2+1/h".parse().unwrap();
        })));
        let ip = IpAddr::from([10, 0, 0, 1]);
        let conn = Connection::new(limits, Payer::Anonymous(ip), ip);
        assert!(!conn.refused_too_often());
        assert!(!conn.refused_too_often());
        assert!(conn.refused_too_often());
    }

    #[tokio::test]
    async fn idle_keys_are_swept() {
        let limits = Limits::new(&config(|c| c.limit_send = "1+1000/s".parse().unwrap()));
        let Some(buckets) = &limits.0 else {
            panic!("limits are on by default");
        };
        buckets
            .send
            .check_key(&Payer::User(UserId::generate()))
            .unwrap();
        assert_eq!(buckets.send.len(), 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        limits.sweep_once();
        assert_eq!(buckets.send.len(), 0);
    }
}
