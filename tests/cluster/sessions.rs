//! Sessions across nodes: signing out on one node revokes the cookie on every node, and an
//! administrator's ban or disconnect made on one node closes the user's sockets on the others.

use reqwest::{Method, StatusCode};

use crate::services::{Cluster, urls};
use crate::support::{
    http, register, session_status, sign_in, sign_out, upgrade_status, ws_request,
};

#[tokio::test]
async fn a_cookie_signed_out_on_one_node_is_refused_by_every_node() {
    let Some((admin, redis)) = urls() else { return };
    let cluster = Cluster::new(&admin, &redis).await;
    let (a, b) = (cluster.node().await, cluster.node().await);
    let (cookie, _) = sign_in(&a.base_url(), "alice").await;
    assert_eq!(session_status(&b.base_url(), &cookie).await, StatusCode::OK);
    assert_eq!(
        upgrade_status(ws_request(&b.ws_url(), &[("cookie", &cookie)])).await,
        101
    );

    sign_out(&a.base_url(), &cookie).await;
    assert_eq!(
        session_status(&b.base_url(), &cookie).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        upgrade_status(ws_request(&b.ws_url(), &[("cookie", &cookie)])).await,
        401
    );
}

#[tokio::test]
async fn an_administrators_ban_and_disconnect_reach_every_node() {
    let Some((admin, redis)) = urls() else { return };
    let cluster = Cluster::new(&admin, &redis).await;
    let (a, b) = (cluster.node().await, cluster.node().await);
    let (root, _) = register(&a.base_url(), "root").await;
    let mut config = confab::Config::ephemeral(a.data_dir());
    config.database_url = Some(cluster.db.url.clone());
    let grant = confab::config::AdminAction::Grant {
        username: "root".into(),
    };
    confab::accounts::admin::run(&config, &grant)
        .await
        .expect("grant");
    let (troll, _) = register(&a.base_url(), "troll").await;
    let (guest, user) = sign_in(&a.base_url(), "wanderer").await;
    // Their sockets are on node b; the administrator acts on node a.
    let mut troll_socket = b.client_with_cookie(&troll).await;
    let mut guest_socket = b.client_with_cookie(&guest).await;
    troll_socket.join("r").await;
    guest_socket.join("r").await;

    let id = user["user"]["id"].as_str().expect("an id");
    let (status, _) = http(
        &a.base_url(),
        Method::POST,
        &format!("/api/admin/users/{id}/disconnect"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(guest_socket.expect_close().await, 4004);

    let (status, _) = http(
        &a.base_url(),
        Method::POST,
        "/api/admin/users/troll/ban",
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(troll_socket.expect_close().await, 4005);
    assert_eq!(
        session_status(&b.base_url(), &troll).await,
        StatusCode::UNAUTHORIZED
    );
    let (status, stats) = http(
        &b.base_url(),
        Method::GET,
        "/api/admin/stats",
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["banned"][0]["username"], "troll", "{stats}");
}
