//! What a request is waiting for. When a request's time runs out while it
//! waits for its site's audience to be read, the HTTP layer answers that
//! the audience is being loaded, with an estimate of when to come back,
//! instead of a bare timeout.
//!
//! The HTTP layer runs each request inside [`WaitNote::scope`]; a request
//! that waits for a site's read (see `site.rs`) writes the read's progress
//! on the note of the request it runs in (a task-local: nothing is passed
//! down through the handlers). Work outside a request (the webhook tracker,
//! the CLI) has no note, and nothing is written.

use crate::storage::progress::{ProgressReport, ReadProgress};
use std::future::Future;
use std::sync::{Arc, Mutex};

tokio::task_local! {
    static NOTE: WaitNote;
}

/// One request's note of the read it waits for.
#[derive(Clone, Default)]
pub struct WaitNote(Arc<Mutex<Option<Noted>>>);

/// A site, and the progress of the read of it a request waits for.
type Noted = (i64, Arc<ReadProgress>);

/// A site's read that a request was still waiting for.
#[derive(Debug, Clone)]
pub struct Loading {
    pub site_id: i64,
    pub progress: ProgressReport,
}

impl WaitNote {
    /// Runs `future` (a request) with this note as its own.
    pub async fn scope<F: Future>(&self, future: F) -> F::Output {
        NOTE.scope(self.clone(), future).await
    }

    /// The read the request last waited for, if it has not ended: what the
    /// request was waiting for when its time ran out.
    pub fn loading(&self) -> Option<Loading> {
        let note = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (site_id, progress) = note.as_ref()?;
        (!progress.is_finished()).then(|| Loading {
            site_id: *site_id,
            progress: progress.report(),
        })
    }
}

/// Notes that the request this runs in waits for `site_id`'s read.
pub(super) fn note(site_id: i64, progress: &Arc<ReadProgress>) {
    let _ = NOTE.try_with(|note| {
        *note.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((site_id, Arc::clone(progress)));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_sees_the_read_it_waits_for_until_it_ends() {
        let note = WaitNote::default();
        let progress = Arc::new(ReadProgress::new());
        note.scope(async { note_it(7, &progress) }).await;
        assert_eq!(note.loading().map(|l| l.site_id), Some(7));
        progress.finish();
        assert!(note.loading().is_none());
    }

    #[tokio::test]
    async fn nothing_is_noted_outside_a_request() {
        let progress = Arc::new(ReadProgress::new());
        note_it(7, &progress);
        let note = WaitNote::default();
        assert!(note.loading().is_none());
    }

    fn note_it(site_id: i64, progress: &Arc<ReadProgress>) {
        note(site_id, progress);
    }
}
