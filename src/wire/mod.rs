//! The wire shapes: every request and response body of Corral's API as Rust
//! types, below both front ends. The HTTP layer reads requests into these
//! types and answers with them; the CLI's `--json` output is built from the
//! same types and functions, so it matches the API byte for byte. Each type
//! carries serde (what is really read or written) and utoipa (what the
//! OpenAPI document says of it), so the document describes what is parsed.
//!
//! - [`body`]: reading a body into its request type, every problem at once.
//! - [`strings`]: the constrained strings (names, emails, ids) as schemas.
//! - [`segments`], [`audience`], [`evaluation`], [`webhooks`], [`history`],
//!   [`overlap`]: each area's requests and responses.
//!
//! Bento's two error bodies are here too: `{"error":"Message"}` and
//! `{"errors":[{"field","message"}]}`.

pub mod audience;
pub mod body;
pub mod evaluation;
pub mod history;
pub mod manual;
pub mod overlap;
pub mod segments;
pub mod strings;
pub mod webhooks;

pub use body::{BodyError, Given};

use crate::segment::FieldError;
use serde::Serialize;
use utoipa::ToSchema;

/// `{"error":"Message"}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(example = "Segment not found")]
    pub error: String,
}

/// `{"errors":[{"field":"name","message":"has already been taken"}]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrorBody {
    pub errors: Vec<FieldError>,
}

/// A wire value as JSON bytes.
pub fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(value).expect("wire types serialize")
}

/// A whole number from a query parameter or flag, within `min..=max`;
/// `default` when absent. The error is what the user is told.
pub fn whole_number(
    text: Option<&str>,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, String> {
    match text {
        None => Ok(default),
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("must be a whole number from {min} to {max}")),
    }
}
