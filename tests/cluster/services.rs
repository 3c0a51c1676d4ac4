//! The services a cluster test needs: a fresh Redis prefix, a private redis-server, and nodes
//! wired to them (the database, the proxy and the skip policy are `tests/support`'s).

use std::time::Duration;

use crate::support::TestServer;
pub use crate::support::services::{Proxy, TestDatabase};

/// The shared signing secret of every node of a test cluster.
pub const SECRET: &str = "test-cluster-secret-test-cluster-secret-test-cluster-secret-0123456789";

/// `CONFAB_TEST_DATABASE_URL` (an admin URL, e.g. `postgres://root@127.0.0.1:5432/postgres`) and
/// `CONFAB_TEST_REDIS_URL`. Missing ones skip the test loudly, or fail it under `CI=true`.
pub fn urls() -> Option<(String, String)> {
    crate::support::services::database_and_redis_urls()
}

/// A fresh key prefix, so concurrent tests sharing one Redis never hear each other.
pub fn prefix() -> String {
    format!("test-{}", uuid::Uuid::now_v7().simple())
}

/// One test's cluster: a database and a Redis prefix of its own, which nodes join on demand.
pub struct Cluster {
    pub db: TestDatabase,
    pub redis: String,
    pub prefix: String,
}

impl Cluster {
    pub async fn new(admin: &str, redis: &str) -> Self {
        Self {
            db: TestDatabase::create_on(admin).await,
            redis: redis.to_owned(),
            prefix: prefix(),
        }
    }

    /// A node in this process, with the cluster's shared secret.
    pub async fn node(&self) -> TestServer {
        node(&self.db.url, &self.redis, &self.prefix).await
    }

    /// A node with no `--secret`: it must share the one kept in the database.
    pub async fn node_without_secret(&self) -> TestServer {
        node_with_secret(&self.db.url, &self.redis, &self.prefix, None).await
    }
}

/// A node of a test cluster, in this process, with the cluster's shared secret.
pub async fn node(database_url: &str, redis_url: &str, prefix: &str) -> TestServer {
    node_with_secret(database_url, redis_url, prefix, Some(SECRET)).await
}

async fn node_with_secret(
    database_url: &str,
    redis_url: &str,
    prefix: &str,
    secret: Option<&str>,
) -> TestServer {
    let (database_url, redis_url, prefix) = (
        database_url.to_owned(),
        redis_url.to_owned(),
        prefix.to_owned(),
    );
    let secret = secret.map(str::to_owned);
    TestServer::start_with(move |config| {
        config.database_url = Some(database_url);
        config.redis_url = Some(redis_url);
        config.redis_prefix = prefix;
        config.secret = secret;
        config.rate_limits = confab::config::RateLimits::Off;
    })
    .await
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A redis-server of the test's own, which the test may stop and restart.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut redis = Self {
            port: free_port(),
            child: None,
            dir,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts it on the same port, empty, and waits until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        let child = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut connection) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "private redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
