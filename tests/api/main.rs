//! Integration tests: each starts a real confab server on an ephemeral port with its own data
//! folder and talks to it over real HTTP and WebSocket connections.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod history;
mod lobby;
mod messages;
mod overload;
mod presence;
mod restart;
mod session;
mod slow;
