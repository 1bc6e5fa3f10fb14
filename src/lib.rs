//! Corral: a self-hosted audience-segments server that speaks Bento's Segments API.
//!
//! # Layout
//!
//! The query language, the audience's rules, the columnar audience and the
//! engine that evaluates segments live in the workspace crate [`corral_core`]
//! (no database, HTTP or async runtime in it); this crate is the server built
//! on it:
//!
//! The modules, from the front ends down (no module imports one above it):
//!
//! - [`http`]: the HTTP layer. An axum [`Router`](axum::Router) built by a pure
//!   function over [`http::AppState`], the Bento-compatible routes under `/api/v1`,
//!   authentication (the [`http::Caller`] extractor), rate limiting, the
//!   OpenAPI document, and the one [`http::ApiError`] that turns every failure
//!   into Bento's error shapes.
//! - [`cli`]: the `corral` command line: `serve`, site and key administration,
//!   segment management working on the database directly.
//! - [`wire`]: every request and response body as a type, below both front
//!   ends: what the HTTP layer reads and answers, and what the CLI's `--json`
//!   prints, with serde and utoipa on the same types.
//! - [`service`]: the domain services both front ends call, below them and
//!   above storage and the live snapshots: segments (a draft's every rule
//!   checked at once), webhooks' management, a subscriber's segments
//!   (membership) and evaluation (stats, members, match, preview, explain; a
//!   saved segment's query taken from the resident snapshot), so that one set
//!   of rules holds whatever the front end and the backend.
//! - [`segment`]: the segment model and its rules (names, descriptions, the
//!   saved query, references between segments).
//! - [`live`]: live evaluation for the HTTP layer and the CLI: resident
//!   snapshots of each site's audience brought forward from the change log,
//!   every read of a site in a task of its own, freshness checks without
//!   database round trips, checkpoints, and the evaluation budget.
//! - [`storage`]: the [`storage::Store`] traits, the commit-ordered change log
//!   every write records ([`storage::changes`]), the SQL both backends share
//!   (written once, over either driver's connection), and the backends
//!   (SQLite, embedded; PostgreSQL, for several servers), each holding only
//!   what its database does its own way, with its own `migrations/` folder;
//!   the backend is chosen from the database URL's scheme.
//! - [`webhooks`]: membership-change webhooks: their targets' rules, the tracker
//!   that follows watched segments and writes each change with its
//!   notifications (an outbox), and the deliverer that signs, sends and
//!   retries them.
//! - [`config`]: settings layered from flags, `CORRAL_…` environment variables
//!   and an optional `corral.toml`.
//! - [`corral_gen`] (a crate of its own): `corral gen`, a deterministic synthetic
//!   audience (subscribers and events with realistic skew) for the importer.
//! - [`clock`] and [`credentials`]: the injectable clock, and how site ids and
//!   API keys are generated, hashed and compared.
//!
//! # Errors, layer by layer
//!
//! Each layer has its own error type, and a lower layer's error never reaches a
//! client unconverted:
//!
//! - [`segment::FieldErrors`]: a request was well-formed but broke a rule; each
//!   entry names the field. Produced by validation, shown to the user as is.
//! - [`wire::BodyError`]: a body that is not JSON (a 400) or not of its
//!   request type's shape (a 422 listing every problem at once).
//! - [`service::SegmentError`], [`service::EvaluationError`] and
//!   [`service::webhooks`]' errors: what a service call can fail with (the
//!   rules broken, by field; a missing record; a failed precondition).
//! - [`storage::StorageError`]: what a backend reports: a missing record, a
//!   uniqueness conflict, a failed precondition, a change log that cannot
//!   bring a snapshot forward (`Stale`), or a database fault.
//! - [`http::ApiError`]: the only error a handler returns. It converts from
//!   each of the above with `From`, picks the status and Bento's body shape, and logs
//!   (never sends) the detail of a server fault.
//! - [`corral_core::query::Problem`]: one thing wrong with a query, at a JSON
//!   pointer; becomes a [`segment::FieldError`] on `visitor_event_query/…`.
//! - [`corral_core::engine::EvalError`] and [`live::LiveError`]: a query that
//!   cannot be evaluated (foreign, or referring to a missing segment),
//!   answered 422.
//! - The CLI prints any of them as one line on stderr and exits non-zero.

pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod faults;
pub mod http;
pub mod live;
pub mod segment;
pub mod service;
#[cfg(test)]
mod simulation;
pub mod storage;
pub mod webhooks;
pub mod wire;
