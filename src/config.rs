//! Settings, layered: a command-line flag wins over a `CORRAL_…` environment
//! variable, which wins over `corral.toml`, which wins over the default.
//!
//! The file is read from `--config PATH` (or `CORRAL_CONFIG`); without either,
//! from `corral.toml` in the working directory when one exists. Every key is
//! optional and unknown keys are refused, so a typo cannot pass silently:
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! database_url = "sqlite://corral.db"
//! rate_limit_per_minute = 100
//! stats_rate_limit_per_hour = 60
//! auth_failures_per_minute = 30   # per client address; 0: no limit
//! request_timeout_secs = 30
//! log_format = "pretty"   # or "json"
//! log_level = "info"      # a tracing filter, e.g. "corral=debug,info"
//! checkpoint_dir = "/var/lib/corral/corral.db-checkpoints"   # or "off"
//! header_read_timeout_secs = 10
//! body_read_timeout_secs = 10
//! keep_alive_timeout_secs = 60
//! max_connections = 10000
//! max_connections_per_address = 256   # 0: no cap per address
//! preload = ["all"]       # or site uuids: read at start, kept resident
//! history_retention_days = 365   # membership history kept; absent: forever
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file looked for when no path is given.
pub const DEFAULT_CONFIG_FILE: &str = "corral.toml";

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub rate_limit_per_minute: Option<u32>,
    pub stats_rate_limit_per_hour: Option<u32>,
    pub auth_failures_per_minute: Option<u32>,
    pub request_timeout_secs: Option<u64>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    pub checkpoint_dir: Option<String>,
    pub header_read_timeout_secs: Option<u64>,
    pub body_read_timeout_secs: Option<u64>,
    pub keep_alive_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_connections_per_address: Option<usize>,
    pub preload: Option<Vec<String>>,
    pub history_retention_days: Option<u32>,
}

/// How `serve` writes its logs.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object a line.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl FileConfig {
    /// Loads the named file, or the default file if present, or nothing.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_FILE);
                if !default.exists() {
                    return Ok(Self::default());
                }
                default
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse { path, message })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }
}

#[cfg(test)]
mod tests {
    /// `contrib/corral.toml` names every setting, each commented out with
    /// its default: uncommented, it parses and sets every key.
    #[test]
    fn the_example_settings_file_names_every_setting_and_parses() {
        let example = include_str!("../contrib/corral.toml");
        let uncommented: String = example
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                line.split_once(" = ").is_some_and(|(key, _)| {
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let config = super::FileConfig::parse(&uncommented).expect("the example parses");
        // Every field set: the example misses no setting. (Debug shows a
        // field left out as `None`.)
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("None"),
            "a setting the example leaves out: {shown}"
        );
    }

    use super::*;

    #[test]
    fn reads_every_key() {
        let config = FileConfig::parse(
            r#"
            listen = "0.0.0.0:9000"
            database_url = "sqlite:///var/lib/corral.db"
            rate_limit_per_minute = 0
            request_timeout_secs = 5
            log_format = "json"
            log_level = "debug"
            preload = ["all"]
            body_read_timeout_secs = 3
            max_connections_per_address = 0
            history_retention_days = 90
            "#,
        )
        .unwrap();
        assert_eq!(config.body_read_timeout_secs, Some(3));
        assert_eq!(config.max_connections_per_address, Some(0));
        assert_eq!(config.history_retention_days, Some(90));
        assert_eq!(config.listen.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(config.preload, Some(vec!["all".to_owned()]));
        assert_eq!(config.rate_limit_per_minute, Some(0));
        assert_eq!(config.log_format, Some(LogFormat::Json));
    }

    #[test]
    fn refuses_unknown_keys_and_wrong_types() {
        assert!(
            FileConfig::parse("lisen = \"x\"")
                .unwrap_err()
                .contains("lisen")
        );
        assert!(FileConfig::parse("rate_limit_per_minute = \"many\"").is_err());
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let err = FileConfig::load(Some(Path::new("/nonexistent/corral.toml"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/corral.toml"));
    }
}
