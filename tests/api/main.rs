//! Corral's behaviour, tested through the real HTTP server bound on port 0 and
//! through the real `corral` binary; one fresh database per test, SQLite unless
//! `CORRAL_TEST_BACKEND=postgres` (then a new database on the PostgreSQL cluster
//! `CORRAL_TEST_POSTGRES` names, as `scripts/test.sh` runs them a second time).
//!
//! Logs are silent unless `TEST_LOG=1` is set.

mod helpers;

mod audience;
mod auth;
mod bodies;
mod cli;
mod conditional;
mod connections;
mod console;
mod copy;
mod crash_points;
mod demo;
mod edge;
mod errors;
mod evaluation;
mod history;
mod journal;
mod limits;
mod loading;
mod manual;
mod operations;
mod outage;
mod overlap;
mod postgres;
mod rate_limit;
mod readme;
mod retention;
mod sample;
mod search;
mod segments_read;
mod segments_write;
mod subscribers;
mod trimming;
mod upgrade;
mod webhooks;
