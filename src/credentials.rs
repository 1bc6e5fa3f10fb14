//! Site ids and API keys: how they are generated, stored and checked.
//!
//! A site is addressed by a `site_uuid` of 32 hex characters; each key pair is a
//! publishable key (`p` + 31 alphanumerics, the Basic-auth user name, stored as
//! is because it is only an identifier) and a secret key (`s` + 31
//! alphanumerics, the password). Bento's Go SDK refuses values outside 28–36
//! characters, hence the length. Secrets are stored only as their SHA-256
//! digest and compared in constant time: a secret carries about 185 bits of
//! randomness, so a slow password hash would add latency to every request
//! without adding protection against guessing.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A freshly generated key pair; the secret exists in clear only here.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub publishable_key: String,
    pub secret_key: String,
}

impl KeyPair {
    pub fn generate() -> Self {
        Self {
            publishable_key: format!("p{}", random_alphanumeric(31)),
            secret_key: format!("s{}", random_alphanumeric(31)),
        }
    }

    pub fn secret_hash(&self) -> Vec<u8> {
        hash_secret(&self.secret_key)
    }
}

/// A new site id: 32 lowercase hex characters.
pub fn generate_site_uuid() -> String {
    random_hex_id()
}

/// 128 random bits as 32 lowercase hex characters (site and subscriber uuids).
pub fn random_hex_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The stored form of a secret key.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Whether `secret` hashes to `stored`, in time that does not depend on where
/// the two differ.
pub fn secret_matches(secret: &str, stored: &[u8]) -> bool {
    hash_secret(secret).ct_eq(stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_have_the_lengths_bento_clients_accept() {
        let pair = KeyPair::generate();
        assert_eq!(pair.publishable_key.len(), 32);
        assert_eq!(pair.secret_key.len(), 32);
        assert!(pair.publishable_key.starts_with('p'));
        assert!(pair.secret_key.starts_with('s'));
        let uuid = generate_site_uuid();
        assert_eq!(uuid.len(), 32);
        assert!(uuid.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(KeyPair::generate().secret_key, pair.secret_key);
    }

    #[test]
    fn only_the_right_secret_matches_its_hash() {
        let pair = KeyPair::generate();
        let stored = pair.secret_hash();
        assert!(secret_matches(&pair.secret_key, &stored));
        assert!(!secret_matches("s-wrong", &stored));
        assert!(!secret_matches("", &stored));
        assert!(!secret_matches(&pair.secret_key, &stored[..16]));
    }
}
