//! Maintenance commands that work on the data folder rather than on a running server's state:
//! [`backup`] (a consistent copy of the SQLite database, also while the server runs) and its
//! restore.

pub mod backup;
