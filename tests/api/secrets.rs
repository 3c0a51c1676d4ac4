//! Sessions and secrets: signing out revokes the cookie server-side, the secret can come from
//! a file, and the data folder is private to confab's user.

use std::os::unix::fs::PermissionsExt;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, session_status, sign_in, sign_out, upgrade_status, ws_request};

const SECRET: &str = "file-secret-file-secret-file-secret-file-secret-file-secret-0123456789";

#[tokio::test]
async fn a_signed_out_cookie_is_refused_on_http_and_websocket() {
    let server = TestServer::start().await;
    let base = server.base_url();
    let (cookie, user) = sign_in(&base, "alice").await;
    assert_eq!(session_status(&base, &cookie).await, StatusCode::OK);
    let ws = |cookie: &str| upgrade_status(ws_request(&server.ws_url(), &[("cookie", cookie)]));
    assert_eq!(ws(&cookie).await, 101);

    // The finding: after DELETE the cookie stayed valid for a year.
    sign_out(&base, &cookie).await;
    assert_eq!(
        session_status(&base, &cookie).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(ws(&cookie).await, 401);

    // Signing in again with the dead cookie starts a new user rather than reviving the old.
    let response: Value = reqwest::Client::new()
        .post(format!("{base}/api/session"))
        .header("cookie", &cookie)
        .json(&json!({"name": "alice"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(response["user"]["id"], user["user"]["id"]);

    // Revocation is stored: it outlives a restart.
    let mut server = server;
    server.restart().await;
    assert_eq!(
        session_status(&server.base_url(), &cookie).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_secret_can_come_from_a_file() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let from_file = TestServer::start_with(|config| config.secret_file = Some(file.clone())).await;
    let (cookie, _) = sign_in(&from_file.base_url(), "alice").await;
    // A server given the same secret directly accepts the file-signed cookie: same key.
    let direct = TestServer::start_with(|config| config.secret = Some(SECRET.into())).await;
    assert_eq!(
        session_status(&direct.base_url(), &cookie).await,
        StatusCode::OK
    );

    std::fs::write(&file, "too short").unwrap();
    let mut config = confab::Config::ephemeral(folder.path().join("data"));
    config.secret_file = Some(file);
    let refused = confab::Server::build(config)
        .await
        .err()
        .expect("a short secret is refused");
    assert!(refused.to_string().contains("at least 64"), "{refused}");
}

#[tokio::test]
async fn the_data_folder_and_its_files_are_private() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let server = TestServer::start_with(|config| config.data_dir = data.clone()).await;
    // Store something, so that SQLite's WAL and shared-memory files exist too.
    let mut alice = server.client("alice").await;
    alice.join("room").await;
    alice.say("room", "hello").await;
    let mode = |name: &str| {
        std::fs::metadata(data.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700, "the finding: the data folder was 0755");
    let files = [
        "confab.db",
        "confab.db-wal",
        "confab.db-shm",
        "search.db",
        "search.db-wal",
        "search.db-shm",
        "secret.key",
    ];
    for file in files {
        assert_eq!(mode(file), 0o600, "{file}");
    }
}

#[tokio::test]
async fn an_existing_data_folder_is_made_private_at_start() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut server = TestServer::start_on(folder.path(), 0).await;
    server.stop().await;
    let database = folder.path().join("confab.db");
    std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _server = TestServer::start_on(folder.path(), 0).await;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(folder.path()), 0o700);
    assert_eq!(mode(&database), 0o600);
}
