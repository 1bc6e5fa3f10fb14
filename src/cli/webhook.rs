//! `corral webhook …`: a site's membership-change webhooks from the command
//! line, through the same service as `/api/v1/fetch/webhooks` (so the same
//! checks: kept segments of the site, known events, a target that may be
//! sent to). `--json` prints the API's answer. Deliveries are sent by the
//! running servers; these commands only manage and show them.

use super::{CliError, outln, print_json, site_by_uuid};
use crate::clock::{Clock, SystemClock, format_ms};
use crate::segment::FieldErrors;
use crate::service::webhooks::{WebhookInput, Webhooks};
use crate::storage::Store;
use crate::storage::audit::Actor;
use crate::webhooks::WebhookError;
use crate::wire::webhooks::{
    deliveries_limit, delivery_list_body, webhook_body, webhook_list_body,
};
use clap::Subcommand;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// The site's webhooks.
    List {
        /// The site's uuid.
        #[arg(long)]
        site: String,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// Creates a webhook; prints its signing secret (shown this once).
    Create {
        /// The site's uuid.
        #[arg(long)]
        site: String,
        /// Where to POST notifications (http or https).
        #[arg(long)]
        url: String,
        /// A segment id to watch (repeat for several).
        #[arg(long = "segment", required = true)]
        segments: Vec<i64>,
        /// segment.member_added or segment.member_removed (repeat; both when
        /// left out).
        #[arg(long = "event")]
        events: Vec<String>,
        /// Accept a loopback, private or link-local target; the server that
        /// delivers needs the same flag (`corral serve
        /// --allow-private-webhook-targets`). `--allow-private` for short.
        #[arg(long = "allow-private-webhook-targets", alias = "allow-private")]
        allow_private: bool,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
    /// Enables a webhook disabled after failing (what waits is due at once).
    Enable {
        /// The site's uuid.
        #[arg(long)]
        site: String,
        /// The webhook's id, as `webhook list` shows it.
        id: i64,
    },
    /// Deletes a webhook and its undelivered notifications.
    Delete {
        /// The site's uuid.
        #[arg(long)]
        site: String,
        /// The webhook's id, as `webhook list` shows it.
        id: i64,
    },
    /// A webhook's most recent notifications and how their delivery stands.
    Deliveries {
        /// The site's uuid.
        #[arg(long)]
        site: String,
        /// The webhook's id, as `webhook list` shows it.
        id: i64,
        /// How many, newest first (1 to 100).
        #[arg(long, default_value = "20")]
        limit: String,
        /// Print the answer as the API's JSON body, not as text.
        #[arg(long)]
        json: bool,
    },
}

fn failed(error: WebhookError) -> CliError {
    match error {
        WebhookError::Invalid(errors) => errors.into(),
        WebhookError::NotFound => CliError::Usage("no such webhook on this site".into()),
        WebhookError::DeliveryNotFound => CliError::Usage("no such delivery".into()),
        WebhookError::Live(crate::live::LiveError::Storage(e)) | WebhookError::Storage(e) => {
            e.into()
        }
        WebhookError::Live(e) => CliError::Usage(e.to_string()),
    }
}

pub async fn run(
    command: WebhookCommand,
    store: &Arc<dyn Store>,
    checkpoints: Option<PathBuf>,
) -> Result<(), CliError> {
    let live = super::evaluate::live(store, checkpoints);
    let now = SystemClock.now_ms();
    match command {
        WebhookCommand::List { site, json } => {
            let site = site_by_uuid(store, &site).await?;
            let webhooks = Webhooks::new(store, &live, false)
                .list(site.id)
                .await
                .map_err(failed)?;
            if json {
                return print_json(&webhook_list_body(&webhooks));
            }
            for w in &webhooks {
                let state = w.disabled_at.map_or("enabled".to_owned(), |at| {
                    format!("disabled {}", format_ms(at))
                });
                let segments: Vec<String> = w.segment_ids.iter().map(i64::to_string).collect();
                outln!(
                    "{:>4}  {}  segments {}  {}",
                    w.id,
                    w.url,
                    segments.join(","),
                    state
                )?;
            }
            Ok(())
        }
        WebhookCommand::Create {
            site,
            url,
            segments,
            events,
            allow_private,
            json,
        } => {
            let site = site_by_uuid(store, &site).await?;
            let input = WebhookInput {
                url: Some(url),
                segment_ids: Some(segments),
                events: (!events.is_empty()).then_some(events),
                disabled: None,
            };
            let webhook = Webhooks::new(store, &live, allow_private)
                .create(site.id, input, now, &Actor::Cli)
                .await
                .map_err(failed)?;
            if json {
                return print_json(&webhook_body(&webhook, true));
            }
            outln!("webhook {} created", webhook.id)?;
            outln!("secret: {} (shown this once)", webhook.secret)
        }
        WebhookCommand::Enable { site, id } => {
            let site = site_by_uuid(store, &site).await?;
            let input = WebhookInput {
                disabled: Some(false),
                ..WebhookInput::default()
            };
            Webhooks::new(store, &live, false)
                .update(site.id, id, input, now, &Actor::Cli)
                .await
                .map_err(failed)?;
            outln!("webhook {id} enabled")
        }
        WebhookCommand::Delete { site, id } => {
            let site = site_by_uuid(store, &site).await?;
            Webhooks::new(store, &live, false)
                .delete(site.id, id, now, &Actor::Cli)
                .await
                .map_err(failed)?;
            outln!("webhook {id} deleted")
        }
        WebhookCommand::Deliveries {
            site,
            id,
            limit,
            json,
        } => {
            let limit = deliveries_limit(Some(&limit))
                .map_err(|m| FieldErrors::from(crate::segment::FieldError::new("limit", m)))?;
            let site = site_by_uuid(store, &site).await?;
            let deliveries = Webhooks::new(store, &live, false)
                .deliveries(site.id, id, limit)
                .await
                .map_err(failed)?;
            if json {
                return print_json(&delivery_list_body(&deliveries));
            }
            for d in &deliveries {
                let state = match (d.delivered_at, d.attempts) {
                    (Some(at), _) => format!("delivered {}", format_ms(at)),
                    (None, 0) => "pending".to_owned(),
                    (None, n) => format!(
                        "failing after {n} attempts, next {}",
                        format_ms(d.next_attempt_at)
                    ),
                };
                outln!("{:>6}  {}  {}", d.id, d.event_id, state)?;
            }
            Ok(())
        }
    }
}
