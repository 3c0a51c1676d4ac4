//! The client_ids senders give their messages. By default `c<n>`, numbered per sender: short
//! and nearly in order, like the web UI's UUIDv7s. `persist --client-ids random` sends
//! UUIDv4-shaped random ids instead, as a third-party client using `crypto.randomUUID()`
//! would, so the cost of ids that land anywhere in the store's client_id index can be measured.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

static RANDOM: OnceLock<u64> = OnceLock::new();

/// From now on every sender's ids are random (seeded once per process).
pub fn use_random() {
    let _ = RANDOM.set(RandomState::new().hash_one(0u8));
}

/// The client_id of message `n` of `sender`.
pub fn client_id(sender: u32, n: u64) -> String {
    match RANDOM.get() {
        None => format!("c{n}"),
        Some(&seed) => random_id(seed, sender, n),
    }
}

/// A UUIDv4-shaped id for message `n` of `sender`. splitmix64 is a bijection, so distinct
/// (sender, n) give distinct ids as long as n stays below 2^40 (years at the bench's rates).
fn random_id(seed: u64, sender: u32, n: u64) -> String {
    let unique = (u64::from(sender) << 40) ^ n;
    let high = splitmix64(unique ^ seed);
    let low = splitmix64(high);
    uuid_v4(high, low)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `high` and `low` as a UUID string with the version (4) and variant (10) bits set.
fn uuid_v4(high: u64, low: u64) -> String {
    let high = (high & !0xf000) | 0x4000;
    let low = (low & !(0b11 << 62)) | (0b10 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_uuid_v4_shaped_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for sender in 0..50 {
            for n in 0..200 {
                let id = random_id(0x5eed, sender, n);
                assert_eq!(id.len(), 36, "{id}");
                assert_eq!(&id[14..15], "4", "version: {id}");
                assert!("89ab".contains(&id[19..20]), "variant: {id}");
                assert!(seen.insert(id));
            }
        }
    }
}
