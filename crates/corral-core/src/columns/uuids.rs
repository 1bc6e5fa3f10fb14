//! The subscribers' public uuids, and the buckets of stable samples worked
//! out from them.
//!
//! A uuid as Corral hands them out is 32 lowercase hex digits: it is kept as
//! its 16 bytes, half the memory of the text (16 MB at a million
//! subscribers); any other text (a uuid written by another system and
//! copied in) is kept as written beside them, so every uuid is hashed
//! exactly as stored. The buckets of a salt ([`crate::query::sample`]) are
//! worked out once per snapshot and kept, two bytes a subscriber, for the
//! last [`MAX_SALTS`] salts asked for; subscribers appended later get theirs
//! when a query next asks.

use crate::query::sample::bucket;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

/// Salts whose buckets a snapshot keeps (2 MB each at a million
/// subscribers); the salt worked out longest ago makes way for a new one.
pub const MAX_SALTS: usize = 8;

/// How many buckets are worked out between looks at whether to stop.
const STOP_EVERY: usize = 1 << 14;

/// One uuid per subscriber, in the order of the subscriber columns.
#[derive(Debug, Default)]
pub struct Uuids {
    /// The 16 bytes of each uuid in Corral's form (zeros for the others).
    packed: Vec<[u8; 16]>,
    /// The uuids not in Corral's form, by index, as written.
    other: HashMap<u32, Box<str>>,
    buckets: RwLock<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_salt: HashMap<String, Arc<Vec<u16>>>,
    /// The salts held, the first worked out first.
    order: VecDeque<String>,
}

/// The 16 bytes of 32 lowercase hex digits, or `None` for any other text.
fn pack(uuid: &str) -> Option<[u8; 16]> {
    let digits = uuid.as_bytes();
    if digits.len() != 32 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

impl Uuids {
    pub fn len(&self) -> usize {
        self.packed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packed.is_empty()
    }

    /// Appends the uuid of the next subscriber.
    pub(crate) fn push(&mut self, uuid: &str) {
        let index = self.packed.len();
        self.packed.push([0; 16]);
        self.put(index, uuid);
    }

    fn put(&mut self, index: usize, uuid: &str) {
        match pack(uuid) {
            Some(bytes) => {
                self.packed[index] = bytes;
                self.other.remove(&(index as u32));
            }
            None => {
                self.packed[index] = [0; 16];
                self.other.insert(index as u32, uuid.into());
            }
        }
    }

    /// Sets the uuid at `index` (uuids do not change; should one, the
    /// buckets held follow it).
    pub(crate) fn set(&mut self, index: usize, uuid: &str) {
        let mut buf = [0u8; 32];
        if self.get(index, &mut buf) == uuid {
            return;
        }
        self.put(index, uuid);
        let held = self.buckets.get_mut().unwrap_or_else(|e| e.into_inner());
        for (salt, buckets) in &mut held.by_salt {
            if let Some(slot) = Arc::make_mut(buckets).get_mut(index) {
                *slot = bucket(salt, uuid);
            }
        }
    }

    /// The uuid at `index`, written into `buf` when it is in Corral's form.
    pub fn get<'a>(&'a self, index: usize, buf: &'a mut [u8; 32]) -> &'a str {
        if let Some(text) = self.other.get(&(index as u32)) {
            return text;
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, byte) in self.packed[index].iter().enumerate() {
            buf[2 * i] = HEX[usize::from(byte >> 4)];
            buf[2 * i + 1] = HEX[usize::from(byte & 15)];
        }
        std::str::from_utf8(&buf[..]).unwrap_or_default()
    }

    /// Whether the buckets of `salt` are held for every subscriber: a
    /// sample of it then costs a read per subscriber, no hashing.
    pub fn has_buckets(&self, salt: &str) -> bool {
        self.buckets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_salt
            .get(salt)
            .is_some_and(|b| b.len() == self.len())
    }

    /// The bucket of every subscriber for `salt` (in hundredths), worked
    /// out for those who have none yet; `None` when `stop` said to stop
    /// (it is asked every few thousand hashes).
    pub fn buckets(&self, salt: &str, stop: &dyn Fn() -> bool) -> Option<Arc<Vec<u16>>> {
        let n = self.len();
        let known = self
            .buckets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_salt
            .get(salt)
            .cloned();
        if let Some(known) = &known
            && known.len() == n
        {
            return Some(Arc::clone(known));
        }
        // Worked out outside the lock: evaluations of other salts go on.
        let mut buckets: Vec<u16> = known.map(|k| k.as_ref().clone()).unwrap_or_default();
        buckets.reserve(n - buckets.len());
        let mut buf = [0u8; 32];
        while buckets.len() < n {
            if stop() {
                return None;
            }
            let end = n.min(buckets.len() + STOP_EVERY);
            for index in buckets.len()..end {
                buckets.push(bucket(salt, self.get(index, &mut buf)));
            }
        }
        let buckets = Arc::new(buckets);
        let mut held = self.buckets.write().unwrap_or_else(|e| e.into_inner());
        if !held.by_salt.contains_key(salt) {
            if held.order.len() >= MAX_SALTS
                && let Some(oldest) = held.order.pop_front()
            {
                held.by_salt.remove(&oldest);
            }
            held.order.push_back(salt.to_owned());
        }
        held.by_salt.insert(salt.to_owned(), Arc::clone(&buckets));
        Some(buckets)
    }

    /// The packed uuids, and the others by index (ascending): what a
    /// checkpoint writes.
    pub(crate) fn parts(&self) -> (&[[u8; 16]], Vec<(u32, &str)>) {
        let mut other: Vec<(u32, &str)> = self.other.iter().map(|(i, t)| (*i, &**t)).collect();
        other.sort_unstable_by_key(|(i, _)| *i);
        (&self.packed, other)
    }

    /// Uuids from [`Uuids::parts`]; `None` when an index is out of range.
    pub(crate) fn from_parts(packed: Vec<[u8; 16]>, other: Vec<(u32, String)>) -> Option<Self> {
        let n = packed.len();
        let other: HashMap<u32, Box<str>> = other
            .into_iter()
            .map(|(i, t)| ((i as usize) < n).then(|| (i, t.into_boxed_str())))
            .collect::<Option<_>>()?;
        Some(Self {
            packed,
            other,
            buckets: RwLock::default(),
        })
    }

    /// The salts whose buckets are held.
    #[cfg(test)]
    fn salts(&self) -> Vec<String> {
        let held = self.buckets.read().unwrap_or_else(|e| e.into_inner());
        held.order.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuids(texts: &[&str]) -> Uuids {
        let mut u = Uuids::default();
        for t in texts {
            u.push(t);
        }
        u
    }

    #[test]
    fn uuids_read_back_as_written_whatever_their_form() {
        let texts = [
            "0123456789abcdef0123456789abcdef",
            "00000000000000000000000000000000",
            "0123456789ABCDEF0123456789ABCDEF",
            "123e4567-e89b-12d3-a456-426614174000",
            "ünï",
            "",
            "0123456789abcdef0123456789abcdeg",
        ];
        let mut u = uuids(&texts);
        let mut buf = [0u8; 32];
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(u.get(i, &mut buf), *t);
        }
        assert_eq!(u.other.len(), 5, "two of them are packed");
        u.set(2, "ffffffffffffffffffffffffffffffff");
        u.set(0, "other");
        assert_eq!(u.get(2, &mut buf), "ffffffffffffffffffffffffffffffff");
        assert_eq!(u.get(0, &mut buf), "other");
        assert_eq!(u.other.len(), 5);
    }

    #[test]
    fn buckets_are_worked_out_once_follow_new_subscribers_and_a_changed_uuid() {
        let mut u = uuids(&["a", "b"]);
        let never = || false;
        let first = u.buckets("s", &never).unwrap();
        assert_eq!(*first, [bucket("s", "a"), bucket("s", "b")]);
        assert!(Arc::ptr_eq(&first, &u.buckets("s", &never).unwrap()));
        assert!(u.has_buckets("s"));
        u.push("c");
        assert!(!u.has_buckets("s"));
        let more = u.buckets("s", &never).unwrap();
        assert_eq!(
            *more,
            [bucket("s", "a"), bucket("s", "b"), bucket("s", "c")]
        );
        u.set(1, "d");
        assert_eq!(u.buckets("s", &never).unwrap()[1], bucket("s", "d"));
        // Told to stop: nothing is kept.
        assert_eq!(u.buckets("t", &|| true), None);
        assert!(!u.has_buckets("t"));
    }

    #[test]
    fn the_salt_worked_out_first_makes_way() {
        let u = uuids(&["a"]);
        for i in 0..=MAX_SALTS {
            u.buckets(&format!("s{i}"), &|| false).unwrap();
        }
        let salts = u.salts();
        assert_eq!(salts.len(), MAX_SALTS);
        assert_eq!(salts[0], "s1");
        assert!(!u.has_buckets("s0"));
        // Asked again: worked out again, the same.
        assert_eq!(u.buckets("s0", &|| false).unwrap()[0], bucket("s0", "a"));
    }
}
