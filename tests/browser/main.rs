//! Browser end-to-end tests: real Chromium, driven over WebDriver (chromedriver), against a real
//! confab server per test. Each simulated user is its own WebDriver session, so its own cookies.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/install-browser.sh`). Without them the
//! tests print a loud notice and pass, except under `CI=true`, where they fail.
//!
//! Run with `cargo test --test browser`. The screenshots in `docs/screenshots/` are written when
//! missing; `CONFAB_SCREENSHOTS=1 cargo test --test browser screenshots` refreshes them.

#[path = "../support/mod.rs"]
mod support;

mod accessibility;
mod accounts;
mod admin;
mod guest;
mod harness;
mod messages;
mod page;
mod reading;
mod room_basics;
mod rooms;

use guest::*;
use harness::*;
use page::*;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::{FutureExt, SinkExt, StreamExt};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::TestServer;
use tokio_tungstenite::tungstenite::Message;
