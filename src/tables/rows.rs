//! One partition of a table held in memory: its rows, which of them changed since the store
//! last took them, and the changelog position the store may record with them.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};

use crate::codec::Datum;

/// A partition this worker holds. An agent's job holds `writer` from its first record to its
/// last, so a body's read-modify-write (`t[k] += 1`) is never interleaved with another job's
/// on the same partition, and the changelog gets the changes in the order they were made.
/// Readers (timers, HTTP) only take `rows`, briefly.
#[derive(Default)]
pub struct Held {
    pub writer: Mutex<()>,
    pub rows: RwLock<Rows>,
}

/// Keys (as the changelog encodes them) and their decoded values.
#[derive(Default)]
pub struct Rows {
    values: HashMap<Vec<u8>, Datum>,
    /// Keys changed since the store last took them.
    dirty: HashSet<Vec<u8>>,
    /// The changelog offset the store may record as read up to: every change before it is
    /// in the changelog (acknowledged). `None`: nothing read or written yet.
    position: Option<i64>,
    /// Whether `position` moved since the store last took it.
    position_moved: bool,
}

/// What the store is to write for one partition: changed keys with their encoded values
/// (`None`: removed), and the position.
pub struct Taken {
    pub changes: Vec<(Vec<u8>, Option<Datum>)>,
    pub position: i64,
}

impl Rows {
    pub fn get(&self, key: &[u8]) -> Option<&Datum> {
        self.values.get(key)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.values.keys()
    }

    /// A change made here (by an agent): the store must take it.
    pub fn change(&mut self, key: Vec<u8>, value: Option<Datum>) {
        self.dirty.insert(key.clone());
        self.load(key, value);
    }

    /// Room for `more` rows (a recovery knows how many the store holds).
    pub fn reserve(&mut self, more: usize) {
        self.values.reserve(more);
    }

    /// A row as read from the store or the changelog: the store has it already.
    pub fn load(&mut self, key: Vec<u8>, value: Option<Datum>) {
        match value {
            Some(value) => self.values.insert(key, value),
            None => self.values.remove(&key),
        };
    }

    /// The changelog holds everything before `next`.
    pub fn advance(&mut self, next: i64) {
        if self.position.is_none_or(|p| p < next) {
            self.position = Some(next);
            self.position_moved = true;
        }
    }

    /// The store has the rows and the position as they are (a recovery wrote them).
    pub fn mark_stored(&mut self) {
        self.dirty.clear();
        self.position_moved = false;
    }

    /// Whether anything changed since the store last took the rows.
    pub fn changed(&self) -> bool {
        !self.dirty.is_empty() || self.position_moved
    }

    pub fn position(&self) -> Option<i64> {
        self.position
    }

    /// The changed rows and the position, for the store; `None` when it has them already.
    pub fn take(&mut self) -> Option<Taken> {
        let position = self.position?;
        if self.dirty.is_empty() && !self.position_moved {
            return None;
        }
        self.position_moved = false;
        let changes = self
            .dirty
            .drain()
            .map(|key| {
                let value = self.values.get(&key).cloned();
                (key, value)
            })
            .collect();
        Some(Taken { changes, position })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Datum {
        Datum::Value(serde_json::Value::String(s.into()))
    }

    #[test]
    fn the_store_takes_changed_rows_once_with_the_position() {
        let mut rows = Rows::default();
        rows.load(b"a".to_vec(), Some(text("from the store")));
        assert!(rows.take().is_none(), "no position yet");
        rows.advance(10);
        let taken = rows.take().unwrap();
        assert!(
            taken.changes.is_empty(),
            "loaded rows are the store's already"
        );
        assert_eq!(taken.position, 10);
        assert!(rows.take().is_none(), "nothing new");
        rows.change(b"b".to_vec(), Some(text("1")));
        rows.change(b"a".to_vec(), None);
        rows.advance(9); // an older acknowledgement never moves the position back
        let mut taken = rows.take().unwrap();
        taken.changes.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            taken.changes,
            vec![(b"a".to_vec(), None), (b"b".to_vec(), Some(text("1")))]
        );
        assert_eq!(taken.position, 10);
        assert_eq!(rows.len(), 1);
    }
}
