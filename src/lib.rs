//! confab: a real-time chat server. Rooms by name, live presence, every message stored before
//! anyone sees it, exact resume after a drop.
//!
//! A message's path, top to bottom (imports point one way only):
//!
//! - [`server`]: wiring. `build` binds and opens storage, `run` serves until told to stop.
//! - [`http`], [`ws`]: the edges. Parse and authenticate (with [`identity`]), then call inward.
//! - [`rooms`]: the group-commit writer that stores a message and only then publishes it; the
//!   hub that appends it to its room's log (encoded once) for every member to take; presence;
//!   the lobby.
//! - [`store`], [`broker`]: small traits with one module per backend (SQLite or PostgreSQL;
//!   in-process or Redis).
//! - [`protocol`], [`domain`]: plain types. Wire frames and validated values; they import
//!   nothing else of ours.
//! - [`config`], [`state`]: options and the state every request shares.
//! - [`limits`]: rate limits (token buckets per user and per IP), checked at the edges.
//! - [`telemetry`]: log output, Prometheus metrics and the admin view's figures; [`ops`]:
//!   backup and restore; [`admin`]: what the admin view shows and does.

pub mod accounts;
pub mod admin;
pub mod broker;
pub mod config;
pub mod domain;
pub mod http;
pub mod identity;
pub mod limits;
pub mod ops;
pub mod protocol;
pub mod rooms;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod ws;

pub use config::Config;
pub use server::Server;
