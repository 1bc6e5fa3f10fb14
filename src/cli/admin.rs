//! `corral site …` and `corral key …`: sites and their API key pairs.
//!
//! A secret key is shown once, when it is made; the database keeps only its
//! digest. Revoking a key takes effect on the server's next request.
//!
//! With `--json`, `site create` and `key create` print the bare credentials
//! object `{"site_uuid","publishable_key","secret_key"}` (the contract
//! scripts rely on); the lists print one `{"data":[…]}` object, as the API
//! does.

use super::{CliError, outln, print_json, site_by_uuid};
use crate::clock::{Clock, SystemClock, format_ms};
use crate::credentials::{KeyPair, generate_site_uuid};
use crate::storage::actor::Actor;
use crate::storage::{Site, Store};
use clap::Subcommand;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Create a site with its first key pair.
    Create {
        /// The site's name, for people.
        name: String,
        /// Print {"site_uuid","publishable_key","secret_key"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List every site.
    List {
        /// Print {"data":[{"site_uuid","name","created_at"}]} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Issue another key pair for a site.
    Create {
        /// The site's uuid.
        #[arg(long)]
        site: String,
        /// Print {"site_uuid","publishable_key","secret_key"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a site's key pairs (publishable keys only).
    List {
        /// The site's uuid.
        #[arg(long)]
        site: String,
        /// Print {"data":[{"publishable_key","created_at","revoked_at"}]} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key pair by its publishable key; it answers 401 at once.
    Revoke {
        /// The key pair's publishable key, as `key list` shows it.
        publishable_key: String,
    },
}

/// `{"site_uuid","publishable_key","secret_key"}`, in that order.
#[derive(serde::Serialize)]
struct Credentials<'a> {
    site_uuid: &'a str,
    publishable_key: &'a str,
    secret_key: &'a str,
}

/// The API's envelope, for the lists.
#[derive(serde::Serialize)]
struct Data<T> {
    data: Vec<T>,
}

/// A site in `site list --json`.
#[derive(serde::Serialize)]
struct SiteListing<'a> {
    site_uuid: &'a str,
    name: &'a str,
    created_at: String,
}

/// A key pair in `key list --json`: never its secret, which is not kept.
#[derive(serde::Serialize)]
struct KeyListing<'a> {
    publishable_key: &'a str,
    created_at: String,
    revoked_at: Option<String>,
}

fn print_credentials(site_uuid: &str, keys: &KeyPair, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(&Credentials {
            site_uuid,
            publishable_key: &keys.publishable_key,
            secret_key: &keys.secret_key,
        });
    }
    outln!("site_uuid:        {site_uuid}")?;
    outln!("publishable_key:  {}", keys.publishable_key)?;
    outln!("secret_key:       {}", keys.secret_key)?;
    outln!("(the secret key is shown only now: store it safely)")
}

/// Creates a site and its first key pair.
pub async fn create_site(
    store: &Arc<dyn Store>,
    name: &str,
    demo: bool,
) -> Result<(Site, KeyPair), CliError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CliError::Usage("a site needs a name".into()));
    }
    let keys = KeyPair::generate();
    let site = store
        .create_site(
            name,
            &generate_site_uuid(),
            &keys,
            demo,
            SystemClock.now_ms(),
        )
        .await?;
    Ok((site, keys))
}

pub async fn site(command: SiteCommand, store: &Arc<dyn Store>) -> Result<(), CliError> {
    match command {
        SiteCommand::Create { name, json } => {
            let (site, keys) = create_site(store, &name, false).await?;
            print_credentials(&site.uuid, &keys, json)
        }
        SiteCommand::List { json } => {
            let sites = store.list_sites().await?;
            if json {
                let data: Vec<_> = sites
                    .iter()
                    .map(|site| SiteListing {
                        site_uuid: &site.uuid,
                        name: &site.name,
                        created_at: format_ms(site.created_at),
                    })
                    .collect();
                return print_json(&Data { data });
            }
            for site in &sites {
                outln!(
                    "{}  {}  {}",
                    site.uuid,
                    format_ms(site.created_at),
                    site.name
                )?;
            }
            Ok(())
        }
    }
}

pub async fn key(command: KeyCommand, store: &Arc<dyn Store>) -> Result<(), CliError> {
    match command {
        KeyCommand::Create { site, json } => {
            let site = site_by_uuid(store, &site).await?;
            let keys = KeyPair::generate();
            store
                .add_key(site.id, &keys, SystemClock.now_ms(), &Actor::Cli)
                .await?;
            print_credentials(&site.uuid, &keys, json)
        }
        KeyCommand::List { site, json } => {
            let site = site_by_uuid(store, &site).await?;
            let keys = store.list_keys(site.id).await?;
            if json {
                let data: Vec<_> = keys
                    .iter()
                    .map(|key| KeyListing {
                        publishable_key: &key.publishable_key,
                        created_at: format_ms(key.created_at),
                        revoked_at: key.revoked_at.map(format_ms),
                    })
                    .collect();
                return print_json(&Data { data });
            }
            for key in &keys {
                let state = key.revoked_at.map_or("active".to_owned(), |at| {
                    format!("revoked {}", format_ms(at))
                });
                outln!(
                    "{}  {}  {state}",
                    key.publishable_key,
                    format_ms(key.created_at)
                )?;
            }
            Ok(())
        }
        KeyCommand::Revoke { publishable_key } => {
            store
                .revoke_key(&publishable_key, SystemClock.now_ms(), &Actor::Cli)
                .await
                .map_err(|e| match e {
                    crate::storage::StorageError::NotFound => CliError::Usage(format!(
                        "no key pair has the publishable key {publishable_key:?}"
                    )),
                    other => other.into(),
                })?;
            outln!("revoked {publishable_key}")
        }
    }
}
