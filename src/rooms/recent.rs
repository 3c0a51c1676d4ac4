//! A room's newest messages kept in memory, in seq order, so that most joins (and short
//! resumes) are answered without a store read.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::domain::Message;
use crate::protocol::{JOIN_PAGE, RESUME_CAP};
use crate::store::Page;

/// A contiguous run of a room's newest messages, `base..=base + len - 1`. Known only once a
/// join has read the room's newest page (or seen it empty); live messages extend it in order.
#[derive(Default)]
pub struct Recent {
    base: Option<u64>,
    messages: VecDeque<Arc<Message>>,
}

/// Messages kept per room: enough for a plain join (50) and a short resume.
const RECENT_CAP: usize = 64;

impl Recent {
    /// Starts the run from a page that is the room's newest messages up to `last_seq`.
    pub fn seed(&mut self, newest: &[Message], last_seq: u64) {
        if self.base.is_some() {
            return;
        }
        if newest.is_empty() && last_seq != 0 {
            return; // a resume that brought nothing says nothing about what exists
        }
        let skip = newest.len().saturating_sub(RECENT_CAP);
        self.messages = newest[skip..].iter().cloned().map(Arc::new).collect();
        self.base = Some(self.messages.front().map_or(last_seq + 1, |m| m.seq));
    }

    pub fn push(&mut self, message: &Arc<Message>) {
        let Some(base) = self.base else { return };
        let next = base + self.messages.len() as u64;
        if message.seq == next {
            self.messages.push_back(message.clone());
            if self.messages.len() > RECENT_CAP {
                self.messages.pop_front();
                self.base = Some(base + 1);
            }
        } else if message.seq > next {
            // A hole: forget the run rather than serve it; the next join reads the store.
            *self = Self::default();
        }
    }

    /// What a join asks for, if this run holds all of it.
    pub fn page(&self, since: Option<u64>) -> Option<Page> {
        let base = self.base?;
        let end = base + self.messages.len() as u64; // one past the last
        let from = match since {
            None => end.saturating_sub(JOIN_PAGE as u64).max(1),
            Some(since) if end.saturating_sub(since + 1) > RESUME_CAP as u64 => {
                end - RESUME_CAP as u64
            }
            Some(since) => (since + 1).min(end),
        };
        if from < base {
            return None;
        }
        let skip = usize::try_from(from - base).ok()?;
        let messages: Vec<Message> = self
            .messages
            .iter()
            .skip(skip)
            .map(|m| (**m).clone())
            .collect();
        let has_more = messages.first().is_some_and(|m| m.seq > 1);
        Some(Page { messages, has_more })
    }
}
