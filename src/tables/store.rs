//! A table's local store: one redb file per table in the worker's data directory, holding the
//! table's partitions this worker kept and, per partition, the changelog position its contents
//! reflect — so a restarted worker replays only the changelog's tail, not all of it.
//!
//! Keys and values are the changelog's bytes (encoded with the table's serializers), so what
//! is stored is what the changelog holds. A batch of changes and the position after them are
//! written in one redb transaction: the store never reflects half a batch, nor a batch without
//! its position.

use std::path::Path;

pub use redb::Durability;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// (partition, key) -> value.
const ROWS: TableDefinition<(u32, &[u8]), &[u8]> = TableDefinition::new("rows");
/// partition -> the changelog offset to read next (everything before it is applied).
const POSITIONS: TableDefinition<u32, i64> = TableDefinition::new("positions");

/// One change: a key set to a value, or removed (`None`, a changelog tombstone).
pub type Change = (Vec<u8>, Option<Vec<u8>>);

/// A key and its value, as stored.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A table's local store.
pub struct TableStore {
    db: Database,
}

impl TableStore {
    /// Opens the store at `path`, creating it if missing.
    pub fn open(path: &Path) -> Result<TableStore, String> {
        let db = Database::create(path)
            .map_err(|e| format!("cannot open the table store {}: {e}", path.display()))?;
        let store = TableStore { db };
        // Both tables exist from the start, so reads never meet a missing table.
        store.write(|txn| {
            txn.open_table(ROWS)?;
            txn.open_table(POSITIONS)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Applies `changes` to `partition` and records that the store now reflects the changelog
    /// up to `next_offset` (exclusive), in one transaction, on disk when this returns.
    pub fn apply(
        &self,
        partition: u32,
        changes: &[Change],
        next_offset: i64,
    ) -> Result<(), String> {
        self.apply_all(&[(partition, changes, next_offset)], Durability::Immediate)
    }

    /// Applies several partitions' changes and positions in one transaction. With
    /// `Durability::None` it is on disk only once a later `Immediate` commit is: a crash before
    /// that leaves the store as of an earlier commit, rows and positions together — which the
    /// changelog's tail then brings up to date.
    pub fn apply_all(
        &self,
        batches: &[(u32, &[Change], i64)],
        durability: Durability,
    ) -> Result<(), String> {
        let mut txn = self.db.begin_write().map_err(describe)?;
        txn.set_durability(durability).map_err(describe)?;
        write_batches(&txn, batches).map_err(describe)?;
        txn.commit().map_err(describe)
    }

    /// The changelog offset to read `partition` from: `None` when the store never held it.
    pub fn position(&self, partition: u32) -> Result<Option<i64>, String> {
        let txn = self.db.begin_read().map_err(describe)?;
        let positions = txn.open_table(POSITIONS).map_err(describe)?;
        let position = positions.get(partition).map_err(describe)?;
        Ok(position.map(|p| p.value()))
    }

    /// The value of `key` in `partition`.
    pub fn get(&self, partition: u32, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let txn = self.db.begin_read().map_err(describe)?;
        let rows = txn.open_table(ROWS).map_err(describe)?;
        let value = rows.get((partition, key)).map_err(describe)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Every key and value of `partition`, in key order.
    pub fn partition(&self, partition: u32) -> Result<Vec<Entry>, String> {
        let txn = self.db.begin_read().map_err(describe)?;
        let rows = txn.open_table(ROWS).map_err(describe)?;
        let start: (u32, &[u8]) = (partition, &[]);
        let mut entries = Vec::new();
        for entry in rows.range(start..).map_err(describe)? {
            let (key, value) = entry.map_err(describe)?;
            let (owner, key) = key.value();
            if owner != partition {
                break;
            }
            entries.push((key.to_vec(), value.value().to_vec()));
        }
        Ok(entries)
    }

    /// Forgets `partition` (its rows and position): its changelog is the truth to rebuild from.
    pub fn clear(&self, partition: u32) -> Result<(), String> {
        let keys: Vec<Vec<u8>> = self
            .partition(partition)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        self.write(|txn| {
            let mut rows = txn.open_table(ROWS)?;
            for key in &keys {
                rows.remove((partition, key.as_slice()))?;
            }
            txn.open_table(POSITIONS)?.remove(partition)?;
            Ok(())
        })
    }

    /// Runs `work` in a write transaction and commits it.
    fn write(
        &self,
        work: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(describe)?;
        work(&txn).map_err(describe)?;
        txn.commit().map_err(describe)
    }
}

fn write_batches(
    txn: &redb::WriteTransaction,
    batches: &[(u32, &[Change], i64)],
) -> Result<(), redb::Error> {
    let mut rows = txn.open_table(ROWS)?;
    let mut positions = txn.open_table(POSITIONS)?;
    for &(partition, changes, next_offset) in batches {
        for (key, value) in changes {
            match value {
                Some(value) => rows.insert((partition, key.as_slice()), value.as_slice())?,
                None => rows.remove((partition, key.as_slice()))?,
            };
        }
        positions.insert(partition, next_offset)?;
    }
    Ok(())
}

fn describe(error: impl Into<redb::Error>) -> String {
    format!("table store: {}", error.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("faust-rs-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("table.redb")
    }

    fn set(key: &str, value: &str) -> Change {
        (key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))
    }

    #[test]
    fn changes_and_their_position_survive_a_reopen_per_partition() {
        let path = scratch("reopen");
        {
            let store = TableStore::open(&path).unwrap();
            assert_eq!(store.position(0).unwrap(), None, "never held");
            store.apply(0, &[set("a", "1"), set("b", "2")], 2).unwrap();
            store.apply(1, &[set("a", "other")], 1).unwrap();
            store
                .apply(0, &[(b"b".to_vec(), None), set("c", "3")], 5)
                .unwrap();
        }
        let store = TableStore::open(&path).unwrap();
        assert_eq!(store.position(0).unwrap(), Some(5));
        assert_eq!(store.position(1).unwrap(), Some(1));
        assert_eq!(store.get(0, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(0, b"b").unwrap(), None, "removed");
        assert_eq!(store.get(1, b"a").unwrap(), Some(b"other".to_vec()));
        assert_eq!(
            store.partition(0).unwrap(),
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"c".to_vec(), b"3".to_vec())
            ]
        );
        drop(store);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_cleared_partition_is_gone_and_the_others_stay() {
        let path = scratch("clear");
        let store = TableStore::open(&path).unwrap();
        store.apply(3, &[set("k", "v")], 1).unwrap();
        store.apply(4, &[set("k", "w")], 7).unwrap();
        store.clear(3).unwrap();
        assert_eq!(store.partition(3).unwrap(), Vec::new());
        assert_eq!(store.position(3).unwrap(), None);
        assert_eq!(store.get(4, b"k").unwrap(), Some(b"w".to_vec()));
        assert_eq!(store.position(4).unwrap(), Some(7));
        drop(store);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
