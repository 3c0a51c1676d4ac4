//! Sessions across nodes: signing out on one node revokes the cookie on every node.

use reqwest::StatusCode;

use crate::services::{Cluster, urls};
use crate::support::{session_status, sign_in, sign_out, upgrade_status, ws_request};

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
