//! The thread that writes to the tables' stores what they are to take, in the order it was
//! handed over: a later flush of a partition never lands before an earlier one. Writing off
//! the agents' loop keeps a commit from waiting for the disk.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::store::{Change, Durability, TableStore};

/// One table's partitions to write: (partition, changes, changelog position).
pub struct Written {
    pub table: usize,
    pub batches: Vec<(u32, Vec<Change>, i64)>,
    /// On disk before anything else is written.
    pub durable: bool,
}

enum Work {
    Write(Written),
    /// Answered once everything before it is written.
    Sync(mpsc::SyncSender<()>),
}

pub struct StoreWriter {
    work: mpsc::Sender<Work>,
}

/// How long writes may stay off the disk (`Durability::None`): what a crash can cost is a
/// re-read of this much of the changelog's tail, never a wrong row.
const DURABLE_EVERY: Duration = Duration::from_secs(5);

impl StoreWriter {
    pub fn start(stores: Vec<Arc<TableStore>>) -> std::io::Result<StoreWriter> {
        let (work, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("faust-rs-table-stores".into())
            .spawn(move || serve(&stores, &queue))?;
        Ok(StoreWriter { work })
    }

    pub fn write(&self, written: Written) {
        let _ = self.work.send(Work::Write(written));
    }

    pub fn sync(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.work.send(Work::Sync(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

fn serve(stores: &[Arc<TableStore>], queue: &mpsc::Receiver<Work>) {
    // Per table: when it was last written durably.
    let mut durable_at = vec![Instant::now(); stores.len()];
    while let Ok(work) = queue.recv() {
        let written = match work {
            Work::Write(written) => written,
            Work::Sync(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let table = written.table;
        let durable = written.durable || durable_at[table].elapsed() >= DURABLE_EVERY;
        let durability = if durable {
            durable_at[table] = Instant::now();
            Durability::Immediate
        } else {
            Durability::None
        };
        let batches: Vec<(u32, &[Change], i64)> = written
            .batches
            .iter()
            .map(|(p, changes, position)| (*p, changes.as_slice(), *position))
            .collect();
        if let Err(e) = stores[table].apply_all(&batches, durability) {
            // The changelog still has every change: a restart reads more of it, nothing else.
            tracing::error!("{e}; the changelog still holds these changes");
        }
    }
}
