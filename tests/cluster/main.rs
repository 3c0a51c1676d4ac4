//! Several confab nodes on the machine's real Redis and PostgreSQL: one chat, any node. Each
//! test gets a fresh database and a fresh Redis prefix; outages are staged on a private
//! redis-server or a TCP proxy the test owns, never on the shared services.

#[path = "../support/mod.rs"]
mod support;

mod services;

mod events;
mod faults;
mod nodes;
mod readiness;
mod rooms_access;
mod sessions;
