//! The bucket of a stable sample: where a subscriber falls, for one salt, on
//! a scale from 0 to 100 in steps of a hundredth.
//!
//! The bucket is the first 8 bytes of SHA-256 of the UTF-8 text
//! `salt + ":" + uuid`, read as a big-endian unsigned integer, modulo
//! 10,000, divided by 100. It depends on nothing but the salt and the
//! subscriber's public `uuid`, so it is the same on every server, backend and
//! restart, and anyone can compute it with their own code
//! (`docs/query-language.md#sample` gives it in Python and JavaScript). It is
//! kept here as an integer count of hundredths, 0 to 9,999: a sample's bounds
//! are compared with it exactly, never as floating point.

use sha2::{Digest, Sha256};

/// Hundredths on the bucket scale: buckets are 0 to `BUCKETS - 1`.
pub const BUCKETS: u16 = 10_000;

/// The most characters a salt may have.
pub const MAX_SALT_CHARS: usize = 255;

/// The bucket of `uuid` for `salt`, in hundredths (0 to 9,999).
pub fn bucket(salt: &str, uuid: &str) -> u16 {
    let mut hash = Sha256::new();
    hash.update(salt.as_bytes());
    hash.update(b":");
    hash.update(uuid.as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    #[cfg(test)]
    if crate::engine::mutant::is(crate::engine::mutant::Mutant::BucketLittleEndian) {
        return (u64::from_le_bytes(first) % u64::from(BUCKETS)) as u16;
    }
    (u64::from_be_bytes(first) % u64::from(BUCKETS)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_is_the_documented_hash() {
        // SHA-256("spring-test:0123456789abcdef0123456789abcdef") begins
        // 617d8b2bb74194ac (`printf … | sha256sum`): 7024924013642224812,
        // which is 4812 modulo 10,000.
        let uuid = "0123456789abcdef0123456789abcdef";
        assert_eq!(bucket("spring-test", uuid), 4812);
        // The salt is hashed as written (65f9ac282107d7ec…).
        assert_eq!(bucket("Spring-test", uuid), 6348);
        // As UTF-8 (91fe19feaf6be5ad…).
        assert_eq!(bucket("ünï", "f00d"), 8877);
    }
}
