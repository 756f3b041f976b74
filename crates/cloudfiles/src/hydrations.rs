//! The hydrations running. A program reading in order asks for the next
//! range while the previous request still sends its optional range (the
//! read-ahead): that part stops once a newer request of the same file
//! took over, or both would send the same data. A request the OS
//! cancelled stops at once.

use crate::item_path::ItemPath;
use crate::requests::Ticket;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

#[derive(Default)]
struct Latest {
    by_path: HashMap<ItemPath, u64>,
    by_ticket: HashMap<Ticket, u64>,
    cancelled: HashSet<u64>,
    next: u64,
}

/// The newest hydration of each file being hydrated.
#[derive(Default)]
pub struct Hydrations {
    latest: Mutex<Latest>,
}

impl Hydrations {
    /// A hydration of `path` for `ticket` starts; it is now the newest.
    pub fn start(&self, path: &ItemPath, ticket: Ticket) -> u64 {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.next += 1;
        let id = latest.next;
        latest.by_path.insert(path.clone(), id);
        latest.by_ticket.insert(ticket, id);
        id
    }

    /// The OS cancelled `ticket`'s request.
    pub fn cancel(&self, ticket: Ticket) {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = latest.by_ticket.get(&ticket).copied() {
            latest.cancelled.insert(id);
        }
    }

    pub fn is_cancelled(&self, id: u64) -> bool {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.cancelled.contains(&id)
    }

    /// Whether a newer hydration of `path` than `id` started.
    pub fn superseded(&self, path: &ItemPath, id: u64) -> bool {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.by_path.get(path).is_some_and(|newest| *newest != id)
    }

    /// Hydration `id` of `path` for `ticket` ended.
    pub fn finish(&self, path: &ItemPath, ticket: Ticket, id: u64) {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        if latest.by_path.get(path) == Some(&id) {
            latest.by_path.remove(path);
        }
        if latest.by_ticket.get(&ticket) == Some(&id) {
            latest.by_ticket.remove(&ticket);
        }
        latest.cancelled.remove(&id);
    }
}
