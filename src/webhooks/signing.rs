//! Signing deliveries as the Standard Webhooks specification defines it
//! (<https://www.standardwebhooks.com>), so that a receiver checks them
//! with that specification's libraries, unchanged. A webhook's secret is
//! `whsec_` followed by the base64 of its key: [`SECRET_BYTES`] random
//! bytes ([`new_secret`]). Every request carries `webhook-id`
//! ([`message_id`]: it names the notifications the request carries, so it
//! is the same on every attempt at them), `webhook-timestamp` (the Unix
//! seconds of this attempt) and `webhook-signature`: `v1,` and the base64
//! of the HMAC-SHA256, keyed with the bytes the secret's base64 stands for
//! ([`key`]), of `{id}.{timestamp}.{body}`. Secrets made before the
//! standard was followed (`whsec_` and 32 hex digits) are base64 text as
//! they stand, of a 24-byte key, and that key is what the libraries derive
//! from them and what signs here: they verify unchanged, with no migration.
//! Corral's own earlier scheme ([`corral_signature`], `Corral-Signature:
//! t=…,v1=<hex>`, keyed with the secret's text, and `Corral-Webhook-Id`) is
//! still sent beside the standard's headers, deprecated.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use rand::Rng as _;
use sha2::{Digest, Sha256};

/// What every secret starts with, as the specification names HMAC secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// The random bytes of a new secret's key: 192 bits, the specification's
/// least (it allows 24 to 64), whose base64 needs no padding, so that
/// every library reads it whatever it makes of `=`.
pub const SECRET_BYTES: usize = 24;

/// Base64 (standard alphabet) that reads a secret with or without its
/// padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A new webhook's secret: `whsec_` and the base64 of [`SECRET_BYTES`]
/// random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::rng().random();
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The HMAC key of `secret`, as the specification's libraries derive it:
/// the bytes the base64 after `whsec_` stands for. Every secret Corral has
/// made decodes (the hex digits of the earliest ones are base64 letters);
/// one that would not (never made here) is keyed with its text instead,
/// which no library would verify, rather than not sent at all.
pub fn key(secret: &str) -> Vec<u8> {
    let text = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    LENIENT
        .decode(text)
        .ok()
        .filter(|key| !key.is_empty())
        .unwrap_or_else(|| text.as_bytes().to_vec())
}

/// The `webhook-id` of a request of `webhook_id` carrying `body`: `msg_`
/// and 32 hex digits of the SHA-256 of both. A request's body is the
/// stored notifications it carries, in order, so every attempt at the same
/// notifications has the same id (a receiver may take it as an idempotency
/// key), and a request carrying any other notifications (a later batch, or
/// a retry joined by notifications written since) has another.
pub fn message_id(webhook_id: i64, body: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("{webhook_id}.").as_bytes());
    hash.update(body.as_bytes());
    format!("msg_{}", hex::encode(&hash.finalize()[..16]))
}

/// The `webhook-signature` of a request: `v1,` and the base64 of the
/// HMAC-SHA256 of `{message_id}.{seconds}.{body}`, keyed with [`key`].
pub fn standard_signature(secret: &str, message_id: &str, seconds: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key(secret)).expect("HMAC takes a key of any size");
    mac.update(format!("{message_id}.{seconds}.").as_bytes());
    mac.update(body.as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Deprecated: Corral's own `Corral-Signature`, `t=<seconds>,v1=<hex
/// HMAC-SHA256 of "<seconds>.<body>">`, keyed with the secret's text (the
/// whole of it, `whsec_` included). Sent beside the standard's headers for
/// receivers written against it.
pub fn corral_signature(secret: &str, seconds: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(format!("{seconds}.").as_bytes());
    mac.update(body.as_bytes());
    format!(
        "t={seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The signing headers of a request of webhook `webhook_id` (secret
/// `secret`) carrying `body`, attempted at `seconds`: the standard's three,
/// then Corral's deprecated two.
pub fn headers(
    webhook_id: i64,
    secret: &str,
    seconds: i64,
    body: &str,
) -> [(&'static str, String); 5] {
    let id = message_id(webhook_id, body);
    let signature = standard_signature(secret, &id, seconds, body);
    [
        ("webhook-id", id),
        ("webhook-timestamp", seconds.to_string()),
        ("webhook-signature", signature),
        ("corral-webhook-id", webhook_id.to_string()),
        ("corral-signature", corral_signature(secret, seconds, body)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_signatures_match_the_specifications_libraries() {
        // The known answer of the reference libraries' own tests
        // (standardwebhooks, "sign function works").
        assert_eq!(
            standard_signature(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn corral_signatures_are_hmac_sha256_of_time_and_body() {
        // Worked out with Python's hmac module:
        // hmac.new(b"whsec_test", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            corral_signature("whsec_test", 1_700_000_000, "{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }

    #[test]
    fn secrets_are_whsec_and_the_base64_of_random_bytes() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        for secret in [&a, &b] {
            let text = secret.strip_prefix("whsec_").expect("whsec_");
            assert_eq!(text.len(), 32, "{secret}");
            assert_eq!(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap(),
                key(secret)
            );
            assert_eq!(key(secret).len(), SECRET_BYTES);
        }
    }

    #[test]
    fn an_earlier_hex_secret_is_the_24_byte_key_its_base64_stands_for() {
        // whsec_ and 32 hex digits, as webhooks were made before: Python's
        // base64.b64decode("0123456789abcdef0123456789abcdef").
        let key = key("whsec_0123456789abcdef0123456789abcdef");
        assert_eq!(
            hex::encode(&key),
            "d35db7e39ebbf3d69b71d79fd35db7e39ebbf3d69b71d79f"
        );
        assert_eq!(key.len(), 24);
    }

    #[test]
    fn a_message_id_names_the_webhook_and_the_body() {
        let id = message_id(7, r#"{"data":[1]}"#);
        assert_eq!(id, message_id(7, r#"{"data":[1]}"#));
        assert_ne!(id, message_id(8, r#"{"data":[1]}"#));
        assert_ne!(id, message_id(7, r#"{"data":[1,2]}"#));
        assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
        assert!(!id.contains('.'), "{id}");
    }
}
