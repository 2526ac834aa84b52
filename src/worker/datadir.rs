//! The worker's data directory and the exclusive lock that keeps two workers out of one
//! directory (Faust's workers guide: "Worker instances should not share data directories").
//! The lock is an OS file lock, so it dies with the process: a KILLed worker leaves no stale
//! lock behind, only a stale pid in the file, which the next holder overwrites.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A data directory this process holds exclusively until it is dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    // Held for the lock; released when the process exits or this is dropped.
    _lock: File,
}

const LOCK_FILE: &str = "worker.lock";

impl DataDir {
    /// Creates `path` if needed and locks it. The error names the pid of the holder.
    pub fn lock(path: &Path) -> Result<DataDir, String> {
        std::fs::create_dir_all(path)
            .map_err(|e| format!("cannot create data directory {}: {e}", path.display()))?;
        let lock_path = path.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another process"
                } else {
                    holder
                };
                return Err(format!(
                    "data directory {} is in use by pid {holder}: give each worker its own --datadir",
                    path.display()
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", lock_path.display()));
            }
        }
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(|e| format!("cannot write {}: {e}", lock_path.display()))?;
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This directory's static group member id (`group.instance.id`), made once and kept in
    /// the directory: a worker restarted on the same data directory is the same member, so the
    /// group gives it its partitions back without a rebalance.
    pub fn instance_id(&self, app_id: &str) -> Result<String, String> {
        let path = self.path.join(INSTANCE_ID_FILE);
        match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
        let id = format!("{app_id}-{:016x}", rand::random::<u64>());
        std::fs::write(&path, format!("{id}\n"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(id)
    }
}

const INSTANCE_ID_FILE: &str = "instance-id";

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "faust-rs-datadir-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn second_holder_is_refused_with_the_first_holders_pid() {
        let dir = scratch("busy");
        let first = DataDir::lock(&dir).unwrap();
        let error = DataDir::lock(&dir).unwrap_err();
        assert!(
            error.contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        drop(first);
        DataDir::lock(&dir).expect("free again once the holder is gone");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn instance_id_is_made_once_and_kept() {
        let dir = scratch("instance");
        let held = DataDir::lock(&dir).unwrap();
        let id = held.instance_id("app").unwrap();
        assert!(
            id.starts_with("app-") && id.len() == "app-".len() + 16,
            "{id}"
        );
        assert_eq!(held.instance_id("app").unwrap(), id);
        drop(held);
        assert_eq!(
            DataDir::lock(&dir).unwrap().instance_id("app").unwrap(),
            id,
            "kept across restarts"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lock_file_holds_our_pid_after_a_stale_one() {
        let dir = scratch("stale");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(LOCK_FILE), "999999999\n").unwrap();
        let held = DataDir::lock(&dir).unwrap();
        let content = std::fs::read_to_string(held.path().join(LOCK_FILE)).unwrap();
        assert_eq!(content.trim(), std::process::id().to_string());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
