//! The carrier's notification feed: the notices on the filings it sees (its own and its
//! principals'), from a cursor on, then following the log as it grows.

use tokio::sync::mpsc;

use crate::ids::Eori;
use crate::pb::{Notification, WatchNotificationsRequest};

use super::{FilingError, FilingService};

/// Notifications waiting for the carrier to read them.
const NOTIFICATION_BUFFER: usize = 64;
/// Notifications read from the index at a time.
const NOTIFICATION_CHUNK: usize = 256;

/// A feed: notifications in sequence order; it ends with an error, when the gateway stops, or
/// when the receiver is dropped.
pub type Feed = mpsc::Receiver<Result<Notification, FilingError>>;

impl FilingService {
    /// The caller's notifications after `request.after_sequence`, then each new one as it is
    /// made durable.
    pub fn notifications(
        &self,
        caller: &Eori,
        request: WatchNotificationsRequest,
    ) -> Result<Feed, FilingError> {
        self.throttle_read(caller)?;
        let mut after = request.after_sequence;
        let filers = self.access.filers_of(caller);
        let (out, feed) = mpsc::channel(NOTIFICATION_BUFFER);
        let store = self.store.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut durable = store.durable();
            loop {
                durable.borrow_and_update();
                let mut batch = Vec::new();
                for filer in &filers {
                    match store
                        .index()
                        .notifications(filer, after, NOTIFICATION_CHUNK)
                    {
                        Ok(found) => batch.extend(found),
                        Err(e) => {
                            let _ = out.send(Err(FilingError::Store(e.into()))).await;
                            return;
                        }
                    }
                }
                batch.sort_by_key(|n| n.sequence);
                batch.truncate(NOTIFICATION_CHUNK);
                let full = batch.len() == NOTIFICATION_CHUNK;
                for notification in batch {
                    after = notification.sequence;
                    if out.send(Ok(notification)).await.is_err() {
                        return;
                    }
                }
                if full {
                    continue;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = out.closed() => return,
                    changed = durable.changed() => if changed.is_err() { return },
                }
            }
        });
        Ok(feed)
    }
}
