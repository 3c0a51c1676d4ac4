//! Maintenance commands that work on the data folder rather than on a running server's state:
//! [`backup`] (a consistent copy of the SQLite database, also while the server runs) and its
//! restore, [`export`] (a room's messages as JSON lines), and [`retention`] (the server's
//! background purge of old messages).

pub mod backup;
pub mod export;
pub mod retention;
