//! `confab backup PATH` and `confab restore PATH` for the embedded SQLite store.
//!
//! A backup is `VACUUM INTO` on a plain connection beside the running server: SQLite reads one
//! consistent snapshot (a WAL read transaction) and writes it as a new, compact, self-contained
//! database file, while the server keeps committing. Everything committed before the backup
//! started is in it; nothing half-written is.
//!
//! A restore replaces the folder's database only while no server uses the folder: the server
//! keeps each room's next seq in memory, so a database swapped under it would make it hand out
//! seqs that already exist. It takes the same OS lock on `confab.lock` a server holds, so a
//! server cannot start in the middle of it either.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::store::sqlite::{DATABASE_FILE, LOCK_FILE, remove_if_there, remove_search_index};

/// Tables every confab database has, whatever its migration: a file without them is not ours.
const REQUIRED_TABLES: &[&str] = &["_sqlx_migrations", "rooms", "messages"];

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{} does not exist: is --data-dir right?", .0.display())]
    NoDatabase(PathBuf),
    #[error("{} already exists: a backup is always written to a new file", .0.display())]
    Exists(PathBuf),
    #[error("a server is using {}: stop it before restoring", .0.display())]
    InUse(PathBuf),
    #[error("{} is not a confab database: {why}", .path.display())]
    NotConfab { path: PathBuf, why: String },
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Writes a consistent copy of `data_dir`'s database to `to`, a file that must not exist yet.
/// Returns the copy's size in bytes.
pub fn backup(data_dir: &Path, to: &Path) -> Result<u64, BackupError> {
    let source = data_dir.join(DATABASE_FILE);
    if !source.exists() {
        return Err(BackupError::NoDatabase(source));
    }
    // Created empty (VACUUM INTO accepts an empty file) with private permissions first: a
    // backup holds password hashes and, with a shared secret, the session secret.
    crate::identity::create_private_file(to).map_err(|error| match error.kind() {
        std::io::ErrorKind::AlreadyExists => BackupError::Exists(to.to_path_buf()),
        _ => BackupError::Io(error),
    })?;
    let copied = (|| {
        // Read-write without create, not read-only: a read-only connection cannot create the
        // WAL index when the server is not running, and this connection never writes anyway.
        let connection = Connection::open_with_flags(
            &source,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The server's writer holds SQLite's write lock for a batch at a time; a checkpoint may
        // hold it briefly too.
        connection.busy_timeout(Duration::from_secs(10))?;
        let target = to
            .to_str()
            .ok_or_else(|| std::io::Error::other("the backup path is not valid UTF-8"))?;
        connection.execute("VACUUM INTO ?1", [target])?;
        drop(connection);
        check_confab(to)?;
        File::open(to)?.sync_all()?;
        Ok(std::fs::metadata(to)?.len())
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    copied
}

/// Replaces `data_dir`'s database with the backup at `from`, after checking that it is a
/// confab database; refuses while a server uses the folder.
pub fn restore(data_dir: &Path, from: &Path) -> Result<(), BackupError> {
    crate::identity::create_private_dir(data_dir)?;
    let lock = crate::identity::open_private_file(&data_dir.join(LOCK_FILE))?;
    if lock.try_lock().is_err() {
        return Err(BackupError::InUse(data_dir.to_path_buf()));
    }
    check_confab(from)?;
    let database = data_dir.join(DATABASE_FILE);
    let incoming = data_dir.join(format!("{DATABASE_FILE}.restoring"));
    let _ = std::fs::remove_file(&incoming);
    {
        let mut out = crate::identity::create_private_file(&incoming)?;
        std::io::copy(&mut File::open(from)?, &mut out)?;
        out.flush()?;
        out.sync_all()?;
    }
    // The old database's WAL and index go first: SQLite cannot tell whose WAL it finds, and
    // would replay the old database's pages onto the restored one. So does the old search
    // index, which the next start rebuilds from the restored messages.
    for suffix in ["-wal", "-shm"] {
        remove_if_there(&data_dir.join(format!("{DATABASE_FILE}{suffix}")))?;
    }
    remove_search_index(data_dir)?;
    std::fs::rename(&incoming, &database)?;
    // The rename is durable only once the folder itself is on disk.
    #[cfg(unix)]
    File::open(data_dir)?.sync_all()?;
    drop(lock);
    Ok(())
}

/// `path` is an intact SQLite database with confab's tables.
fn check_confab(path: &Path) -> Result<(), BackupError> {
    let not_confab = |why: String| BackupError::NotConfab {
        path: path.to_path_buf(),
        why,
    };
    if !path.is_file() {
        return Err(not_confab("no such file".into()));
    }
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|error| not_confab(error.to_string()))?;
    let check: String = connection
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|error| not_confab(error.to_string()))?;
    if check != "ok" {
        return Err(not_confab(format!("quick_check says {check}")));
    }
    for table in REQUIRED_TABLES {
        let found: i64 = connection.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |row| row.get(0),
        )?;
        if found == 0 {
            return Err(not_confab(format!("it has no {table} table")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_database_is_not_restored() {
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("bogus.db");
        std::fs::write(&bogus, b"not a database at all, just text").unwrap();
        let data = dir.path().join("data");
        let refused = restore(&data, &bogus);
        assert!(
            matches!(refused, Err(BackupError::NotConfab { .. })),
            "{refused:?}"
        );
        assert!(!data.join(DATABASE_FILE).exists());
    }

    #[test]
    fn a_sqlite_database_of_something_else_is_not_restored() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE notes (body TEXT)")
            .unwrap();
        let refused = restore(&dir.path().join("data"), &other);
        assert!(
            matches!(refused, Err(BackupError::NotConfab { .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn a_backup_never_overwrites_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DATABASE_FILE), b"").unwrap();
        let existing = dir.path().join("keep.db");
        std::fs::write(&existing, b"precious").unwrap();
        assert!(matches!(
            backup(dir.path(), &existing),
            Err(BackupError::Exists(_))
        ));
        assert_eq!(std::fs::read(&existing).unwrap(), b"precious");
    }
}
