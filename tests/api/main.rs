//! Integration tests: each starts a real confab server on an ephemeral port with its own data
//! folder and talks to it over real HTTP and WebSocket connections.

#[path = "../support/mod.rs"]
mod support;

mod accounts;
mod admin;
mod bad_input;
mod conformance;
mod deletion;
mod events;
mod export;
mod history;
mod limits;
mod lobby;
mod messages;
mod names;
mod operations;
mod origin;
mod overload;
mod parse;
mod presence;
mod rate_limits;
mod restart;
mod retention;
mod rooms_access;
mod secrets;
mod session;
mod slow;
mod takeover;
mod timeouts;
mod tls;
