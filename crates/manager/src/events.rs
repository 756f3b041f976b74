//! The event stream: every state change, published once, to every
//! subscriber, in order.
//!
//! Publishing happens while the registry's lock is held (see `daemon`), so
//! the order of `seq` is the order of the changes. The last
//! [`HISTORY`] events are kept, so a subscriber can start from a `seq`
//! it learnt from `status` without a gap. A subscriber that reads too
//! slowly loses events from the broadcast and is told how many.

use crate::protocol::{rfc3339, Event, EventKind};
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// Events kept for late subscribers, and the broadcast's depth.
pub(crate) const HISTORY: usize = 1024;

pub(crate) struct EventBus {
    tx: broadcast::Sender<Event>,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    last: u64,
    history: VecDeque<Event>,
}

impl EventBus {
    pub(crate) fn new() -> EventBus {
        EventBus {
            tx: broadcast::channel(HISTORY).0,
            kept: Mutex::new(Kept::default()),
        }
    }

    /// Numbers, stamps, keeps and sends `event`.
    pub(crate) fn publish(&self, mut event: Event) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.last += 1;
        event.seq = kept.last;
        event.time = rfc3339(std::time::SystemTime::now());
        tracing::info!("event {}", event.text());
        if kept.history.len() == HISTORY {
            kept.history.pop_front();
        }
        kept.history.push_back(event.clone());
        // No subscriber is not an error.
        let _ = self.tx.send(event);
    }

    /// The `seq` of the last event published.
    pub(crate) fn last(&self) -> u64 {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).last
    }

    /// Subscribes; with `after`, also returns the kept events after that
    /// `seq` (and a marker if some of those are no longer kept).
    pub(crate) fn subscribe(&self, after: Option<u64>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.tx.subscribe();
        let mut backlog = Vec::new();
        if let Some(after) = after {
            let first_kept = kept.history.front().map_or(kept.last + 1, |e| e.seq);
            if first_kept > after + 1 && after < kept.last {
                backlog.push(missed(first_kept - after - 1));
            }
            backlog.extend(kept.history.iter().filter(|e| e.seq > after).cloned());
        }
        (backlog, rx)
    }
}

/// An event with nothing filled in but what it is about.
fn blank(topic: &str, id: &str, event: EventKind) -> Event {
    Event {
        seq: 0,
        time: String::new(),
        topic: topic.into(),
        id: id.to_string(),
        event,
        state: None,
        reason: None,
        path: None,
        destination: None,
        source: None,
        mountpoint: None,
        connection: None,
        missed: None,
    }
}

/// The marker a subscriber gets in place of `n` events it lost.
pub(crate) fn missed(n: u64) -> Event {
    Event {
        time: rfc3339(std::time::SystemTime::now()),
        missed: Some(n),
        ..blank("events", "", EventKind::Missed)
    }
}

/// An event about connection `id`, to be filled in and published.
pub(crate) fn connection_event(id: &str, event: EventKind) -> Event {
    blank("connection", id, event)
}

/// An event about mount `id`, to be filled in and published.
pub(crate) fn mount_event(id: &str, event: EventKind) -> Event {
    blank("mount", id, event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unmounted_event_says_why_last() {
        let mut event = mount_event("m2", EventKind::Unmounted);
        event.reason = Some("unmounted externally".into());
        event.source = Some("host:/srv".into());
        event.mountpoint = Some("/mnt/x".into());
        let text = event.text();
        assert!(
            text.ends_with(" mount m2 unmounted host:/srv on /mnt/x (unmounted externally)"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn subscribers_get_each_event_once_in_order_and_late_ones_the_history() {
        let bus = EventBus::new();
        let (backlog, mut early) = bus.subscribe(None);
        assert!(backlog.is_empty());
        bus.publish(connection_event("c1", EventKind::Connected));
        bus.publish(mount_event("m1", EventKind::Mounted));
        let (backlog, mut late) = bus.subscribe(Some(1));
        assert_eq!(backlog.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
        bus.publish(mount_event("m1", EventKind::Unmounted));
        for seq in 1..=3 {
            assert_eq!(early.recv().await.unwrap().seq, seq);
        }
        assert_eq!(late.recv().await.unwrap().seq, 3);
        assert!(early.try_recv().is_err() && late.try_recv().is_err());
        assert_eq!(bus.last(), 3);
        let json = serde_json::to_string(&connection_event("c1", EventKind::Closed)).unwrap();
        assert!(!json.contains("missed") && !json.contains("state"), "{json}");
    }
}
