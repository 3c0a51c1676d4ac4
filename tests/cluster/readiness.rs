//! `/readyz` follows the node's dependencies: 503 with a reason while PostgreSQL or Redis is
//! away, 200 again by itself once it is back.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::services::{Cluster, PrivateRedis, Proxy, TestDatabase, node, prefix, urls};
use crate::support::TestServer;
use crate::support::services::with_host;

/// Polls `/readyz` until it answers `want` (within 20 s); returns the last body.
async fn until_readiness(server: &TestServer, want: StatusCode) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = reqwest::get(format!("{}/readyz", server.base_url()))
            .await
            .expect("GET /readyz");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON body");
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still says {status} {body}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readyz_is_503_while_postgres_is_away_and_200_again_after() {
    let Some((admin, redis)) = urls() else { return };
    let db = TestDatabase::create_on(&admin).await;
    let proxy = Proxy::start(db.addr().await).await;
    let server = node(
        &with_host(&db.url, &proxy.addr.to_string()),
        &redis,
        &prefix(),
    )
    .await;
    until_readiness(&server, StatusCode::OK).await;

    proxy.cut().await;
    let body = until_readiness(&server, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["error"]["code"], "not_ready");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("store"),
        "{body}"
    );

    proxy.restore();
    assert_eq!(
        until_readiness(&server, StatusCode::OK).await["status"],
        "ready"
    );
}

#[tokio::test]
async fn readyz_is_503_while_redis_is_away_and_200_again_after() {
    let Some((admin, _)) = urls() else { return };
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::new(&admin, &redis.url()).await;
    let server = cluster.node().await;
    until_readiness(&server, StatusCode::OK).await;

    redis.stop();
    let body = until_readiness(&server, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("Redis"),
        "{body}"
    );

    redis.restart().await;
    until_readiness(&server, StatusCode::OK).await;
}
