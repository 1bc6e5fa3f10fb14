//! `corral subscriber segments|events`: one subscriber, found by email, as
//! the console's subscriber page shows them: the segments they are in now
//! (every kept segment evaluated live for them alone, as
//! `GET /fetch/subscribers/segments` does) and their most recent events
//! (`GET /fetch/subscribers/events`). `--json` prints the API's answer.

use super::{CliError, outln, print_json, site_by_uuid};
use crate::clock::{Clock, SystemClock, format_ms};
use crate::segment::{FieldError, FieldErrors, QUERY_FIELD};
use crate::storage::{Site, Store};
use crate::wire::audience::{EventListEnvelope, EventResource, events_limit};
use crate::wire::segments::segment_list_body;
use clap::Subcommand;
use corral_core::audience::{Email, Subscriber};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum SubscriberCommand {
    /// The segments a subscriber is in, now.
    Segments {
        /// The site's uuid.
        #[arg(long)]
        site: String,
        /// The subscriber's email.
        #[arg(long)]
        email: String,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// A subscriber's most recent events, the latest first.
    Events {
        /// The site's uuid.
        #[arg(long)]
        site: String,
        /// The subscriber's email.
        #[arg(long)]
        email: String,
        /// How many events, 1 to 100.
        #[arg(long, default_value = "20")]
        limit: String,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
}

/// The site and the subscriber `email` names on it.
async fn find(
    store: &Arc<dyn Store>,
    site: &str,
    email: &str,
) -> Result<(Site, Subscriber), CliError> {
    let site = site_by_uuid(store, site).await?;
    let email = Email::parse(email).map_err(|m| FieldErrors::from(FieldError::new("email", m)))?;
    let subscriber = store
        .subscriber_by_email(site.id, &email)
        .await?
        .ok_or_else(|| CliError::Usage("no such subscriber on this site".into()))?;
    Ok((site, subscriber))
}

pub async fn run(
    command: SubscriberCommand,
    store: &Arc<dyn Store>,
    checkpoints: Option<PathBuf>,
) -> Result<(), CliError> {
    match command {
        SubscriberCommand::Segments { site, email, json } => {
            let (site, subscriber) = find(store, &site, &email).await?;
            let live = super::evaluate::live(store, checkpoints);
            let segments = crate::service::membership::segments_of(
                store.as_ref(),
                &live,
                site.id,
                subscriber.id,
                SystemClock.now_ms(),
            )
            .await
            .map_err(|e| match e {
                crate::live::LiveError::Storage(e) => CliError::from(e),
                crate::live::LiveError::NotEvaluable(e) => {
                    FieldErrors::from(FieldError::new(QUERY_FIELD, e.to_string())).into()
                }
            })?;
            if json {
                return outln!("{}", String::from_utf8_lossy(&segment_list_body(&segments)));
            }
            if segments.is_empty() {
                return outln!("{} is in no segment", subscriber.email);
            }
            for s in &segments {
                outln!("{:>6}  {}", s.id, s.name)?;
            }
            Ok(())
        }
        SubscriberCommand::Events {
            site,
            email,
            limit,
            json,
        } => {
            let limit = events_limit(Some(&limit))
                .map_err(|m| FieldErrors::from(FieldError::new("limit", m)))?;
            let (site, subscriber) = find(store, &site, &email).await?;
            let events = store.recent_events(site.id, subscriber.id, limit).await?;
            if json {
                return print_json(&EventListEnvelope {
                    data: events.into_iter().map(EventResource::from).collect(),
                });
            }
            if events.is_empty() {
                return outln!("{} has no events", subscriber.email);
            }
            for e in &events {
                outln!("{}  {}  {}", format_ms(e.occurred_at), e.kind, e.details)?;
            }
            Ok(())
        }
    }
}
