//! The services a cluster test needs: a fresh PostgreSQL database, a fresh Redis prefix, a
//! private redis-server, a cuttable TCP proxy, and nodes wired to them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::support::TestServer;

/// The shared signing secret of every node of a test cluster.
pub const SECRET: &str = "test-cluster-secret-test-cluster-secret-test-cluster-secret-0123456789";

/// `CONFAB_TEST_DATABASE_URL` (an admin URL, e.g. `postgres://root@127.0.0.1:5432/postgres`) and
/// `CONFAB_TEST_REDIS_URL`. Missing ones skip the test loudly, or fail it under `CI=true`.
pub fn urls() -> Option<(String, String)> {
    let database = std::env::var("CONFAB_TEST_DATABASE_URL").ok();
    let redis = std::env::var("CONFAB_TEST_REDIS_URL").ok();
    match (database, redis) {
        (Some(database), Some(redis)) => Some((database, redis)),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CONFAB_TEST_DATABASE_URL and CONFAB_TEST_REDIS_URL must be set under CI (scripts/test.sh sets them)"
            )
        }
        _ => {
            eprintln!(
                "\n!!! SKIPPED: set CONFAB_TEST_DATABASE_URL and CONFAB_TEST_REDIS_URL \
                 (or run scripts/test.sh, which starts the services and sets them)\n"
            );
            None
        }
    }
}

/// A database of its own for one test, dropped when the test ends.
pub struct TestDatabase {
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    pub async fn create(admin: &str) -> Self {
        let name = format!("confab_test_{}", uuid::Uuid::now_v7().simple());
        let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(admin)
            .await
            .expect("admin connection");
        sqlx::Executor::execute(
            &mut connection,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
        )
        .await
        .expect("create database");
        let url = with_database(admin, &name);
        Self {
            url,
            admin: admin.to_owned(),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop is not async: a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .ok()?;
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::Executor::execute(&mut connection, sqlx::AssertSqlSafe(drop))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// `admin` with its database name replaced by `database` (and its host:port by `host`, if given).
pub fn with_database(admin: &str, database: &str) -> String {
    let (base, query) = admin
        .split_once('?')
        .map_or((admin, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(slash) if slash > "postgres://".len() => &base[..slash],
        _ => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
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
            db: TestDatabase::create(admin).await,
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

/// A TCP proxy to `target` that the test can cut (refusing and dropping every connection) and
/// restore.
pub struct Proxy {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    cut: std::sync::Mutex<CancellationToken>,
    stop: CancellationToken,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let proxy = Arc::new(Self {
            addr: listener.local_addr().expect("proxy addr"),
            open: Arc::new(AtomicBool::new(true)),
            cut: std::sync::Mutex::new(CancellationToken::new()),
            stop: CancellationToken::new(),
        });
        let serving = proxy.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = serving.stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                if !serving.open.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let cut = serving.cut.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        () = cut.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        proxy
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut.lock().unwrap().cancel();
    }
}
