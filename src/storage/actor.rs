//! Who made a change, as the audit log and the segment versions record it:
//! the key pair a request authenticated with, or the command line. Apart
//! from both so that every store trait can take one without depending on
//! the audit log's own types.

/// Who made a change: the key pair a request authenticated with (named by
/// its publishable key), or the command line on the database's machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    Key(String),
    Cli,
}

impl Actor {
    /// What the database keeps and the wire shows: the publishable key, or
    /// `cli` (which no publishable key is: they are `p` and 31 letters and
    /// digits).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Key(key) => key,
            Self::Cli => "cli",
        }
    }

    /// The actor [`Actor::as_str`] wrote.
    pub fn from_stored(text: &str) -> Self {
        match text {
            "cli" => Self::Cli,
            key => Self::Key(key.to_owned()),
        }
    }
}
