//! One connection's session: checks client frames against the connection's state and turns
//! them into room, store and lobby calls. Answers go into the connection's mailbox, bounded in
//! bytes, which the connection writes before its rooms' messages.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::broker::Control;
use crate::domain::{ClientId, ConnectionId, Event, RoomName, User, UserId};
use crate::limits;
use crate::protocol::client::{self, ClientFrame, Ref};
use crate::protocol::server::{self, Frame};
use crate::protocol::{ErrorCode, JOIN_PAGE, MAX_ROOMS_PER_CONNECTION, RESUME_CAP, close};
use crate::rooms::access::Rank;
use crate::rooms::hub::{Activation, JOINED_MEMBERS, TooManyRooms};
use crate::rooms::outbox::Outbox;
use crate::rooms::unread;
use crate::rooms::writer::{AppendError, AppendReply, Sent};
use crate::state::AppState;
use crate::store::{NewMessage, Refusal};

/// A change to a room a client asked for.
enum Change {
    /// A message, maybe answering another.
    Message(String, Option<u64>),
    Delete(u64),
    /// New text for a message.
    Edit(u64, String),
    /// An emoji given (`true`) or taken back.
    React(u64, String, bool),
}

/// A `send`'s outcome once its group commit is done, with the `ref` its answer must carry.
pub type Pending = (Result<Sent, AppendError>, Option<Ref>);

/// A `send` waiting for its group commit.
pub type PendingSend = BoxFuture<'static, Pending>;

/// What the connection must do after a client frame was handled.
pub enum After {
    Nothing,
    /// Wait for this send's commit (without holding up further frames), then answer it.
    Commit(PendingSend),
    /// Close the connection with this code and reason (e.g. rate limits ignored: 1008).
    Close(u16, &'static str),
}

/// Who a connection is: its user, the session it was opened with (none for `/ws?name=`), and
/// whether that user was a server administrator when it connected.
pub struct Identity {
    pub user: User,
    pub sid: Option<String>,
    pub admin: bool,
    /// The account's username (for mentions); `None` for guests.
    pub username: Option<String>,
}

pub struct Session {
    conn: ConnectionId,
    user: User,
    /// The session the connection was opened with (none for `/ws?name=`): its end closes the
    /// connection (4003).
    sid: Option<String>,
    /// A server administrator (as of connecting).
    admin: bool,
    username: Option<String>,
    state: AppState,
    outbox: Outbox,
    rooms: HashSet<RoomName>,
    watching_lobby: bool,
    watching_admin: bool,
    limits: limits::Connection,
}

impl Session {
    pub fn new(
        conn: ConnectionId,
        identity: Identity,
        limits: limits::Connection,
        state: AppState,
        outbox: Outbox,
    ) -> Self {
        let Identity {
            user,
            sid,
            admin,
            username,
        } = identity;
        if let Some(sid) = &sid {
            state.hub.connections.add(sid, conn, outbox.clone());
        }
        state
            .hub
            .connections
            .add_user(&user.id, conn, outbox.clone());
        Self {
            conn,
            user,
            sid,
            admin,
            username,
            state,
            outbox,
            rooms: HashSet::new(),
            watching_lobby: false,
            watching_admin: false,
            limits,
        }
    }

    pub fn conn(&self) -> ConnectionId {
        self.conn
    }

    pub fn user(&self) -> &User {
        &self.user
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    fn send(&self, frame: Frame) {
        self.outbox.push(frame);
    }

    fn error(&self, code: ErrorCode, message: &str, reference: Option<&Ref>) {
        self.send(server::error(code, message, reference));
    }

    /// Handles one text frame. A `send` queues its pending commit instead of waiting for it,
    /// so one connection can have many messages in one group commit. Returns a close the
    /// connection must make, if any.
    pub async fn handle(&mut self, text: &str) -> After {
        // Rooms a moderator removed this connection from are forgotten before anything else:
        // no request may reach a room the connection was taken out of.
        for room in self.outbox.take_evicted() {
            self.rooms.remove(&room);
        }
        let (frame, reference) = match client::parse(text) {
            Ok(parsed) => parsed,
            Err(rejection) => {
                self.error(
                    rejection.code,
                    &rejection.message,
                    rejection.reference.as_ref(),
                );
                return After::Nothing;
            }
        };
        let reference = reference.as_ref();
        if let Err(refusal) = self
            .limits
            .admit(&frame, &self.state.hub, self.state.store.as_ref())
            .await
        {
            let retry = Some(refusal.retry_after.millis());
            let error = server::error_with_retry(
                ErrorCode::RateLimited,
                &refusal.message(),
                reference,
                retry,
            );
            self.send(error);
            if refusal.close {
                tracing::info!(conn = self.conn.0, user = %self.user.id.as_str(), "closed: kept going past its rate limits");
                return After::Close(close::POLICY_VIOLATION, "rate limits ignored");
            }
            return After::Nothing;
        }
        match frame {
            ClientFrame::Join { room, since } => self.join(room, since, reference).await,
            ClientFrame::Leave { room } => self.leave(&room, reference),
            ClientFrame::Send {
                room,
                text,
                client_id,
                reply_to,
            } => {
                let change = Change::Message(text.into_string(), reply_to);
                if let Some(pending) = self
                    .submit(room, change, client_id, reference.cloned())
                    .await
                {
                    return After::Commit(pending);
                }
            }
            ClientFrame::Delete {
                room,
                seq,
                client_id,
            } => {
                return self
                    .change(room, Change::Delete(seq), client_id, reference)
                    .await;
            }
            ClientFrame::Edit {
                room,
                seq,
                text,
                client_id,
            } => {
                let change = Change::Edit(seq, text.into_string());
                return self.change(room, change, client_id, reference).await;
            }
            ClientFrame::React {
                room,
                seq,
                emoji,
                added,
                client_id,
            } => {
                let change = Change::React(seq, emoji.as_str().to_owned(), added);
                return self.change(room, change, client_id, reference).await;
            }
            ClientFrame::History {
                room,
                before,
                limit,
            } => {
                self.history(&room, before, limit, reference).await;
            }
            ClientFrame::Rooms => self.watch_lobby(reference).await,
            ClientFrame::Typing { room } => self.typing(room, reference).await,
            ClientFrame::Read { room, seq } => self.read(room, seq, reference).await,
            ClientFrame::Search {
                room,
                query,
                before,
                limit,
            } => self.search(&room, &query, before, limit, reference).await,
            ClientFrame::Ping => self.send(server::pong()),
            ClientFrame::AdminWatch => self.watch_admin(reference).await,
            ClientFrame::AdminUnwatch => {
                self.state.admin_watchers.unwatch(self.conn);
                self.watching_admin = false;
            }
            ClientFrame::Members { room, after, limit } => {
                self.members(&room, after.as_ref(), limit, reference);
            }
        }
        After::Nothing
    }

    async fn join(&mut self, room: RoomName, since: Option<u64>, reference: Option<&Ref>) {
        if self.rooms.contains(&room) {
            return self.error(
                ErrorCode::AlreadyJoined,
                "already in this room; leave first to rejoin",
                reference,
            );
        }
        if self.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
            let message =
                format!("one connection may be in at most {MAX_ROOMS_PER_CONNECTION} rooms");
            return self.error(ErrorCode::TooManyRooms, &message, reference);
        }
        // Checked on every join (with `since` too), before anything of the room is touched;
        // cached per node, so a public room costs no store read after its first join here.
        match self.may_join(&room).await {
            Ok(true) => {}
            Ok(false) => return self.refuse_join(reference),
            Err(error) => {
                tracing::error!(%error, conn = self.conn.0, room = %room, "reading a room's access failed");
                return self.error(
                    ErrorCode::Unavailable,
                    "storage is unavailable; try again",
                    reference,
                );
            }
        }
        // Subscribe first, then read: whatever commits in between waits in the subscription.
        if let Err(TooManyRooms(max)) =
            self.state
                .hub
                .subscribe(&room, self.conn, &self.user, self.outbox.clone())
        {
            let message = format!("a user may be in at most {max} rooms at once");
            return self.error(ErrorCode::TooManyRooms, &message, reference);
        }
        self.rooms.insert(room.clone());
        // Again, now that a kick or ban can no longer miss this connection: one made while
        // the check above waited has dropped the cached rules, so this reads them afresh.
        if !self.may_join(&room).await.unwrap_or(false) {
            self.state.hub.unsubscribe(&room, self.conn);
            self.rooms.remove(&room);
            return self.refuse_join(reference);
        }
        match self.state.broker.remote_members(&room).await {
            Ok(members) => self.state.hub.merge_remote(&room, members),
            // Other nodes' members show up as their events arrive and at the next reconcile.
            Err(error) => {
                tracing::warn!(%error, conn = self.conn.0, room = %room, "cannot read other nodes' members")
            }
        }
        let read_seq = self.read_seq(&room).await;
        // Most joins ask for what the room holds in memory; only the rest read the store.
        let activation = Activation {
            room: &room,
            conn: self.conn,
            viewer: &self.user.id,
            since,
            reset: false,
            read_seq,
        };
        if self.state.hub.activate_from_log(activation) {
            return self.start_reading(&room, read_seq).await;
        }
        match self.read_join_page(&room, since).await {
            Ok((page, reset_to)) => {
                // A dropped cursor is replaced by the room's real last seq.
                let activation = Activation {
                    since: reset_to.or(since),
                    reset: reset_to.is_some(),
                    ..activation
                };
                if self.state.hub.activate(activation, page) {
                    self.start_reading(&room, read_seq).await;
                }
            }
            Err(error) => {
                tracing::error!(%error, conn = self.conn.0, room = %room, "reading history for a join failed");
                self.state.hub.unsubscribe(&room, self.conn);
                self.rooms.remove(&room);
                self.error(
                    ErrorCode::Unavailable,
                    "storage is unavailable; try again",
                    reference,
                );
            }
        }
    }

    /// The user's read marker in `room`, for users with a session (a `/ws?name=` user is new on
    /// every connection and has no read state).
    async fn read_seq(&self, room: &RoomName) -> Option<u64> {
        self.sid.as_ref()?;
        match self.state.store.read_seq(&self.user.id, room).await {
            Ok(seq) => seq,
            Err(error) => {
                tracing::warn!(%error, conn = self.conn.0, room = %room, "reading a read marker failed");
                None
            }
        }
    }

    /// On a user's first join of a room their marker starts at its last seq, so nothing old is
    /// unread.
    async fn start_reading(&self, room: &RoomName, read_seq: Option<u64>) {
        if self.sid.is_none() || read_seq.is_some() {
            return;
        }
        let Some(last) = self.state.hub.cursor(room, self.conn) else {
            return;
        };
        if let Err(error) = self.state.store.mark_read(&self.user.id, room, last).await {
            tracing::warn!(%error, conn = self.conn.0, room = %room, "starting a read marker failed");
        }
    }

    /// `read {room, seq}`: moves the user's marker forward; every connection of theirs (on
    /// every node) hears where it is now.
    async fn read(&self, room: RoomName, seq: u64, reference: Option<&Ref>) {
        if !self.rooms.contains(&room) {
            return self.error(
                ErrorCode::NotJoined,
                "join the room to mark it read",
                reference,
            );
        }
        // Not beyond what the room has.
        let seq = match self.state.hub.known_last_seq(&room) {
            Some(last) => seq.min(last),
            None => seq,
        };
        let before = self.read_seq(&room).await;
        match self.state.store.mark_read(&self.user.id, &room, seq).await {
            Ok(now) if before.is_none_or(|before| now > before) => {
                let user = self.user.id.clone();
                let control = Control::ReadMarker {
                    user,
                    room,
                    seq: now,
                };
                if let Err(error) = self.state.broker.control(control).await {
                    tracing::warn!(%error, "could not tell other nodes about a read marker");
                }
            }
            // Already there (or further): this connection hears where it is.
            Ok(now) => self.send(server::read_marker(&room, now)),
            Err(error) => {
                tracing::error!(%error, conn = self.conn.0, room = %room, "storing a read marker failed");
                self.error(
                    ErrorCode::Unavailable,
                    "storage is unavailable; try again",
                    reference,
                );
            }
        }
    }

    /// Whether this connection's user may read `room` now.
    async fn may_join(&self, room: &RoomName) -> Result<bool, crate::store::StoreError> {
        let access = self
            .state
            .hub
            .access
            .get(self.state.store.as_ref(), room)
            .await?;
        Ok(access.may_join(&self.user.id))
    }

    /// One answer for a private room and a ban alike, so a refusal never tells which (nor
    /// whether a private room of that name exists).
    fn refuse_join(&self, reference: Option<&Ref>) {
        self.error(
            ErrorCode::Forbidden,
            "you may not join this room (it is private, or you are banned from it)",
            reference,
        );
    }

    /// The history a join needs. If the client's `since` is from the future (above the room's
    /// last seq: a restored backup or a client bug), also the room's real last seq: such a
    /// cursor is dropped and the client told with `reset: true`, rather than silently
    /// withholding the messages that will take those seqs.
    async fn read_join_page(
        &self,
        room: &RoomName,
        since: Option<u64>,
    ) -> Result<(crate::store::Page, Option<u64>), crate::store::StoreError> {
        let store = &self.state.store;
        let Some(since) = since else {
            return Ok((store.latest(room, JOIN_PAGE).await?, None));
        };
        let page = store.after(room, since, RESUME_CAP).await?;
        let last = page.end_seq().unwrap_or(0);
        let reset = (since > last).then_some(last);
        Ok((page, reset))
    }

    fn members(
        &self,
        room: &RoomName,
        after: Option<&UserId>,
        limit: u32,
        reference: Option<&Ref>,
    ) {
        if !self.rooms.contains(room) {
            return self.error(
                ErrorCode::NotJoined,
                "join the room to list its members",
                reference,
            );
        }
        let limit = usize::try_from(limit).unwrap_or(JOINED_MEMBERS);
        if let Some(frame) = self.state.hub.members(room, after, limit) {
            self.send(frame);
        }
    }

    fn leave(&mut self, room: &RoomName, reference: Option<&Ref>) {
        if !self.rooms.remove(room) {
            return self.error(ErrorCode::NotJoined, "not in this room", reference);
        }
        self.state.hub.unsubscribe(room, self.conn);
        self.send(server::left(room));
    }

    /// Whether the user moderates `room` (its owner, a moderator, or a server administrator).
    /// Read from the node's access cache; if the rules cannot be read, they do not.
    async fn moderates(&self, room: &RoomName) -> bool {
        let access = self
            .state
            .hub
            .access
            .get(self.state.store.as_ref(), room)
            .await;
        access.is_ok_and(|access| access.rank(&self.user.id, self.admin) >= Rank::Moderator)
    }

    /// An event (`delete`, `edit`, `react`, `unreact`): like a `send`, with an optional
    /// `client_id` (without one the request is not retried safely, but it is stored once: it
    /// gets a key of its own).
    async fn change(
        &mut self,
        room: RoomName,
        change: Change,
        client_id: Option<ClientId>,
        reference: Option<&Ref>,
    ) -> After {
        let client_id = client_id.unwrap_or_else(ClientId::unique);
        match self
            .submit(room, change, client_id, reference.cloned())
            .await
        {
            Some(pending) => After::Commit(pending),
            None => After::Nothing,
        }
    }

    async fn submit(
        &mut self,
        room: RoomName,
        change: Change,
        client_id: ClientId,
        reference: Option<Ref>,
    ) -> Option<PendingSend> {
        if !self.rooms.contains(&room) {
            self.error(
                ErrorCode::NotJoined,
                "join the room before changing it",
                reference.as_ref(),
            );
            return None;
        }
        let (text, event, reply_to, moderator) = match change {
            Change::Message(text, reply_to) => (text, Event::Message, reply_to, false),
            Change::Delete(target) => {
                let moderator = self.moderates(&room).await;
                (String::new(), Event::Deleted { target }, None, moderator)
            }
            Change::Edit(target, text) => (text, Event::Edited { target }, None, false),
            Change::React(target, emoji, added) => {
                (emoji, Event::Reaction { target, added }, None, false)
            }
        };
        let message = NewMessage {
            moderator,
            reply_to,
            room,
            id: uuid::Uuid::now_v7().to_string(),
            ts: now_millis(),
            user: self.user.clone(),
            text,
            client_id,
            event,
        };
        match self.state.writer.append(message, Some(self.conn)).await {
            Ok(reply) => Some(wait_for_commit(reply, reference).boxed()),
            Err(AppendError::Overloaded { retry_after_ms }) => {
                self.send(server::error_with_retry(
                    ErrorCode::Overloaded,
                    "the server cannot store messages this fast; nothing was stored",
                    reference.as_ref(),
                    Some(retry_after_ms),
                ));
                None
            }
            Err(error) => {
                self.error(
                    ErrorCode::Unavailable,
                    &error.to_string(),
                    reference.as_ref(),
                );
                None
            }
        }
    }

    pub fn answer_send(&self, outcome: Result<Sent, AppendError>, reference: Option<&Ref>) {
        match outcome {
            // The broadcast already brought this connection its copy.
            Ok(Sent::Stored) => {}
            Ok(Sent::Duplicate(original)) => self.send(server::message(&original, true)),
            Ok(Sent::Refused(Refusal::NotFound)) => self.error(
                ErrorCode::NotFound,
                "no such message in this room (or it is deleted already)",
                reference,
            ),
            Ok(Sent::Refused(Refusal::Forbidden)) => self.error(
                ErrorCode::Forbidden,
                "only its author (or, to delete it, a moderator of the room) may do this",
                reference,
            ),
            // Already as asked (a reaction there, or gone): nothing changed, nothing to say.
            Ok(Sent::Refused(Refusal::NoChange)) => {}
            Ok(Sent::Refused(Refusal::TooManyReactions)) => self.error(
                ErrorCode::TooManyReactions,
                "this message has as many different emoji as it may (20)",
                reference,
            ),
            Err(error) => self.error(
                ErrorCode::Unavailable,
                &format!("{error}; nothing was stored"),
                reference,
            ),
        }
    }

    async fn history(&self, room: &RoomName, before: u64, limit: u32, reference: Option<&Ref>) {
        if !self.rooms.contains(room) {
            return self.error(
                ErrorCode::NotJoined,
                "join the room to read its history",
                reference,
            );
        }
        match self.state.store.before(room, before, limit).await {
            Ok(page) => self.send(server::history(
                room,
                &page.messages,
                &self.user.id,
                page.has_more,
            )),
            Err(error) => {
                tracing::error!(%error, conn = self.conn.0, room = %room, "reading history failed");
                self.error(
                    ErrorCode::Unavailable,
                    "storage is unavailable; try again",
                    reference,
                );
            }
        }
    }

    /// Full-text search of a room the connection is in (so a private room's only for its
    /// members, like everything else about it).
    async fn search(
        &self,
        room: &RoomName,
        query: &str,
        before: u64,
        limit: u32,
        reference: Option<&Ref>,
    ) {
        if !self.rooms.contains(room) {
            return self.error(
                ErrorCode::NotJoined,
                "join the room to search it",
                reference,
            );
        }
        let words = crate::store::search_words(query);
        match self.state.store.search(room, &words, before, limit).await {
            Ok((messages, more)) => self.send(server::search_results(
                room,
                query,
                &messages,
                &self.user.id,
                more,
            )),
            Err(error) => {
                tracing::error!(%error, conn = self.conn.0, room = %room, "searching failed");
                self.error(
                    ErrorCode::Unavailable,
                    "storage is unavailable; try again",
                    reference,
                );
            }
        }
    }

    async fn typing(&self, room: RoomName, reference: Option<&Ref>) {
        if !self.rooms.contains(&room) {
            return self.error(ErrorCode::NotJoined, "not in this room", reference);
        }
        if !self.state.hub.typing_due(&room, &self.user.id) {
            return;
        }
        let user = self.user.clone();
        if let Err(error) = self
            .state
            .broker
            .control(Control::Typing { room, user })
            .await
        {
            // This node's members heard it; others miss one typing notice, by design lossy.
            tracing::debug!(%error, "could not tell other nodes about typing");
        }
    }

    /// `admin_watch`: for a server administrator (as stored now, not as of connecting), the
    /// figures at once and then every second.
    async fn watch_admin(&mut self, reference: Option<&Ref>) {
        let admin = match self.state.store.account_by_id(&self.user.id).await {
            Ok(account) => account.is_some_and(|account| account.admin && !account.banned),
            Err(error) => {
                tracing::error!(%error, conn = self.conn.0, "reading an account failed");
                return self.error(
                    ErrorCode::Unavailable,
                    "storage is unavailable; try again",
                    reference,
                );
            }
        };
        if self.sid.is_none() || !admin {
            return self.error(
                ErrorCode::Forbidden,
                "only server administrators may watch the admin view",
                reference,
            );
        }
        match crate::admin::stats(&self.state).await {
            Ok(stats) => self.send(server::admin_stats(&stats)),
            Err(error) => {
                tracing::error!(%error, conn = self.conn.0, "gathering the admin figures failed");
                return self.error(
                    ErrorCode::Unavailable,
                    "storage is unavailable; try again",
                    reference,
                );
            }
        }
        self.state
            .admin_watchers
            .watch(self.conn, self.outbox.clone());
        self.watching_admin = true;
    }

    async fn watch_lobby(&mut self, reference: Option<&Ref>) {
        // Watch first, then snapshot: a change in between arrives as an update after it.
        self.state.hub.lobby.watch(self.conn, self.outbox.clone());
        self.watching_lobby = true;
        let store = self.state.store.as_ref();
        let rooms = match self.state.hub.lobby_for(store, Some(&self.user.id)).await {
            Ok(mut rooms) if self.sid.is_some() => {
                let username = self.username.as_deref();
                unread::annotate(store, &self.user, username, &mut rooms)
                    .await
                    .map(|()| rooms)
            }
            other => other,
        };
        match rooms {
            Ok(rooms) => self.send(server::rooms(&rooms, true)),
            Err(error) => {
                tracing::error!(%error, conn = self.conn.0, "reading the room list failed");
                self.error(
                    ErrorCode::Unavailable,
                    "storage is unavailable; try again",
                    reference,
                );
            }
        }
    }

    pub fn leave_everything(&mut self) {
        if let Some(sid) = self.sid.take() {
            self.state.hub.connections.remove(&sid, self.conn);
        }
        self.state
            .hub
            .connections
            .remove_user(&self.user.id, self.conn);
        for room in self.rooms.drain() {
            self.state.hub.unsubscribe(&room, self.conn);
        }
        if self.watching_lobby {
            self.state.hub.lobby.unwatch(self.conn);
        }
        if self.watching_admin {
            self.state.admin_watchers.unwatch(self.conn);
        }
    }
}

async fn wait_for_commit(reply: AppendReply, reference: Option<Ref>) -> Pending {
    (reply.await.unwrap_or(Err(AppendError::Stopped)), reference)
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
