//! What a signed-in user has not read yet: per room of their lobby, the messages from others
//! after their read marker, and how many of those mention them (`@username`, or `@` and their
//! display name, in any case).

use std::collections::HashMap;

use crate::domain::User;
use crate::protocol::server::RoomCount;
use crate::store::{Store, StoreError};

/// Adds `unread` and `mentions` to the rooms where `user` has a read marker.
pub async fn annotate(
    store: &dyn Store,
    user: &User,
    username: Option<&str>,
    rooms: &mut [RoomCount],
) -> Result<(), StoreError> {
    let markers: HashMap<String, u64> =
        store.read_markers_of(&user.id).await?.into_iter().collect();
    for room in rooms.iter_mut() {
        let Some(&marker) = markers.get(room.name.as_str()) else {
            continue;
        };
        let marker = store
            .read_seq(&user.id, &room.name)
            .await?
            .unwrap_or(marker);
        let unread = store.unread(&user.id, &room.name, marker).await?;
        let mentioned = unread
            .texts
            .iter()
            .filter(|text| mentions(text, username, user.name.as_str()))
            .count();
        room.unread = Some(unread.count);
        room.mentions = Some(u64::try_from(mentioned).unwrap_or(u64::MAX));
    }
    Ok(())
}

/// Whether `text` mentions the user: `@username` or `@` + their display name, in any case,
/// not followed by more of a name (so `@dan` does not mention `dana`).
pub fn mentions(text: &str, username: Option<&str>, name: &str) -> bool {
    let text = text.to_lowercase();
    let name = name.to_lowercase();
    let mut needles = vec![name.as_str()];
    if let Some(username) = username {
        needles.push(username);
    }
    needles.into_iter().any(|needle| {
        text.match_indices('@').any(|(at, _)| {
            let rest = &text[at + 1..];
            rest.starts_with(needle)
                && !rest[needle.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || "_.-".contains(c))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn mentions_need_the_whole_name_after_an_at() {
        assert!(mentions("hi @Dana!", Some("dana"), "Dana R."));
        assert!(mentions("@DANA R. look", None, "Dana R."));
        assert!(mentions("ping @dana_r", Some("dana_r"), "Dana"));
        assert!(!mentions("hi @danae", Some("dana"), "Dana"));
        assert!(!mentions("hi dana", Some("dana"), "Dana"));
        assert!(
            !mentions("email dana@example.com", Some("example"), "x"),
            "needs the whole name"
        );
    }
}
