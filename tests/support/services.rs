//! What a test needs from outside its own process, in one copy for every test binary: the skip
//! policy for a missing service ([`require_service`]), a PostgreSQL database of the test's own
//! ([`TestDatabase`]), and a TCP [`Proxy`] a test can cut to play an outage.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The admin URL of the PostgreSQL server tests may create databases on.
pub const DATABASE_URL_VAR: &str = "CONFAB_TEST_DATABASE_URL";
/// The Redis server tests share (each under a key prefix of its own).
pub const REDIS_URL_VAR: &str = "CONFAB_TEST_REDIS_URL";

/// Whether a test may go on without `service`: `true` when it is there. When it is not, under
/// `CI=true` the test fails (nothing may be skipped there); elsewhere it says so where a person
/// sees it and the caller returns early.
///
/// The notice goes to the terminal (`/dev/tty`) when there is one, else to the process's stderr
/// handle: libtest hides what `eprintln!` prints for a test that passes, and nextest keeps a
/// passing test's stderr to itself. It is said once per test binary and run: once per process,
/// and under nextest (a process per test) once per `NEXTEST_RUN_ID`, through a marker file.
pub fn require_service(available: bool, service: &str, how_to_get_it: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{service} is missing, and CI=true forbids skipping: {how_to_get_it}");
    }
    static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());
    {
        let mut said = SAID.lock().unwrap_or_else(PoisonError::into_inner);
        if said.iter().any(|s| s == service) {
            return false;
        }
        said.push(service.to_owned());
    }
    if first_in_this_run(service) {
        let binary = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let line = "!".repeat(80);
        let notice = format!(
            "\n{line}\n!!! SKIPPING the tests that need {service} (in {binary}): {how_to_get_it}\n{line}\n"
        );
        match std::fs::OpenOptions::new().write(true).open("/dev/tty") {
            Ok(mut tty) => {
                let _ = tty.write_all(notice.as_bytes());
            }
            Err(_) => {
                let _ = std::io::stderr().write_all(notice.as_bytes());
            }
        }
    }
    false
}

/// Under nextest, whether no other process of this run has said `service` is missing yet.
fn first_in_this_run(service: &str) -> bool {
    let Ok(run) = std::env::var("NEXTEST_RUN_ID") else {
        return true;
    };
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let key: String = format!("{run}-{binary}-{service}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let marker = std::env::temp_dir().join(format!("confab-skipped-{key}"));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(marker)
        .is_ok()
}

/// `CONFAB_TEST_DATABASE_URL`, or `None` (after [`require_service`] said so) without it.
pub fn database_url() -> Option<String> {
    let url = std::env::var(DATABASE_URL_VAR).ok();
    require_service(
        url.is_some(),
        "PostgreSQL",
        &format!(
            "set {DATABASE_URL_VAR} (e.g. postgres://root@127.0.0.1:5432/postgres); scripts/test.sh starts PostgreSQL and sets it"
        ),
    )
    .then(|| url.unwrap_or_default())
}

/// `CONFAB_TEST_DATABASE_URL` and `CONFAB_TEST_REDIS_URL`, or `None` (after saying so) when
/// either is missing.
pub fn database_and_redis_urls() -> Option<(String, String)> {
    let database = std::env::var(DATABASE_URL_VAR).ok();
    let redis = std::env::var(REDIS_URL_VAR).ok();
    match (database, redis) {
        (Some(database), Some(redis)) => Some((database, redis)),
        _ => {
            require_service(
                false,
                "PostgreSQL and Redis",
                &format!(
                    "set {DATABASE_URL_VAR} and {REDIS_URL_VAR}; scripts/test.sh starts both and sets them"
                ),
            );
            None
        }
    }
}

/// A database of one test's own, dropped (with any connections still open to it) on drop, so
/// tests run in parallel without seeing each other.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    /// A fresh database on the server `CONFAB_TEST_DATABASE_URL` names, or `None` (after
    /// [`require_service`] said so) when it names none.
    pub async fn create() -> Option<Self> {
        let admin_url = database_url()?;
        Some(Self::create_on(&admin_url).await)
    }

    /// A fresh, empty database on the server at `admin_url`.
    pub async fn create_on(admin_url: &str) -> Self {
        let name = format!("confab_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(admin_url)
            .await
            .expect("connect to the admin database");
        admin
            .execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let url = with_database(admin_url, &name);
        Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        }
    }

    /// An extra connection to the test database, for arranging what the store cannot.
    pub async fn connection(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Where the database listens, e.g. to put a [`Proxy`] in front of it.
    pub async fn addr(&self) -> SocketAddr {
        let options: sqlx::postgres::PgConnectOptions = self.url.parse().expect("a database url");
        tokio::net::lookup_host((options.get_host(), options.get_port()))
            .await
            .expect("the database host resolves")
            .next()
            .expect("the database host has an address")
    }

    /// Ends every session on the test database except the caller's, and waits until they are
    /// gone, as a database restart or an administrator would.
    pub async fn kill_connections(&self) -> i64 {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to the admin database");
        // The victims are chosen first (MATERIALIZED), then terminated: a terminate call in the
        // WHERE clause may run before the other conditions and hit every session on the server.
        let killed: i64 = sqlx::query_scalar(
            "WITH victims AS MATERIALIZED (
                 SELECT pid FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()
             )
             SELECT count(*) FILTER (WHERE terminated)
             FROM (SELECT pg_terminate_backend(pid, 5000) AS terminated FROM victims) AS t",
        )
        .bind(&self.name)
        .fetch_one(&mut admin)
        .await
        .expect("terminate backends");
        admin.close().await.ok();
        killed
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime (or while a failed test unwinds), where nothing can
        // be awaited: a thread with a runtime of its own does the clean-up and is waited for.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async {
                    let mut admin = PgConnection::connect(&admin_url).await?;
                    admin
                        .execute(AssertSqlSafe(format!(
                            r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                        )))
                        .await?;
                    admin.close().await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// `url` with its database (the path) replaced by `database`, keeping any query string.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// `url` with its host and port replaced by `host` (`host:port`), keeping user, database and
/// query string.
pub fn with_host(url: &str, host: &str) -> String {
    let authority_start = url.find("://").map_or(0, |at| at + 3);
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let user = rest[..authority_end].rsplit_once('@').map(|(user, _)| user);
    let mut out = url[..authority_start].to_owned();
    if let Some(user) = user {
        out.push_str(user);
        out.push('@');
    }
    out.push_str(host);
    out.push_str(&rest[authority_end..]);
    out
}

/// A TCP proxy to `target` that a test can cut and restore, to play an outage (of PostgreSQL,
/// Redis, a node) without touching the machine's shared services. It keeps its port while cut,
/// so whoever was configured with it finds it again on restore.
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    accepting: JoinHandle<()>,
}

struct ProxyState {
    open: bool,
    /// Every piped connection; aborting them closes both of its sockets.
    pipes: JoinSet<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(Mutex::new(ProxyState {
            open: true,
            pipes: JoinSet::new(),
        }));
        let serving = state.clone();
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut state = serving.lock().unwrap_or_else(PoisonError::into_inner);
                // Finished pipes are reaped here, so a long test does not pile them up.
                while state.pipes.try_join_next().is_some() {}
                if !state.open {
                    continue; // dropped: the client sees the connection closed at once
                }
                state.pipes.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self {
            addr,
            state,
            accepting,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Drops every open connection and refuses new ones; the open ones are closed when this
    /// returns.
    pub async fn cut(&self) {
        let mut pipes = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.open = false;
            std::mem::take(&mut state.pipes)
        };
        pipes.shutdown().await;
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open = true;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pipes
            .abort_all();
    }
}
