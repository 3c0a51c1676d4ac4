//! The harness: a server and a chromedriver per test, browsers as its users, and the waits.

use crate::*;

pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long anything a user waits for may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(15);
pub(crate) const POLL: Duration = Duration::from_millis(40);

// ---- the harness: a server, a chromedriver, browsers ---------------------------------------

/// Runs one browser scenario with its own server and chromedriver, and closes every browser
/// afterwards even when the scenario fails (a panic is re-raised after the cleanup).
pub(crate) async fn browser_test<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<TestCtx>) -> Fut,
    Fut: Future<Output = ()>,
{
    // Guests share one IP and seed rooms with hundreds of messages, far faster than the send
    // limit allows; every other limit keeps its default. `browser_test_with` takes the defaults.
    browser_test_with(
        |config| config.limit_send = "100000+100000/s".parse().unwrap(),
        scenario,
    )
    .await;
}

/// [`browser_test`] on a server configured by `adjust`.
pub(crate) async fn browser_test_with<F, Fut>(adjust: impl FnOnce(&mut confab::Config), scenario: F)
where
    F: FnOnce(Arc<TestCtx>) -> Fut,
    Fut: Future<Output = ()>,
{
    if !browser_available() {
        return;
    }
    let ctx = Arc::new(TestCtx::start(adjust).await);
    let outcome = AssertUnwindSafe(scenario(ctx.clone())).catch_unwind().await;
    ctx.close_browsers().await;
    ctx.server.lock().await.stop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

pub(crate) fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    crate::support::services::require_service(
        present,
        &format!("a browser ({CHROMIUM} and {CHROMEDRIVER})"),
        "run scripts/install-browser.sh to install chromium and chromium-driver",
    )
}

pub(crate) struct TestCtx {
    pub(crate) base: String,
    pub(crate) port: u16,
    pub(crate) server: tokio::sync::Mutex<TestServer>,
    /// Stopped servers, kept because they own the temporary data folder.
    pub(crate) stopped: Mutex<Vec<TestServer>>,
    pub(crate) driver: ChromeDriver,
    pub(crate) browsers: tokio::sync::Mutex<Vec<(Client, tempfile::TempDir)>>,
}

impl TestCtx {
    pub(crate) async fn start(adjust: impl FnOnce(&mut confab::Config)) -> Self {
        let (server, driver) = tokio::join!(TestServer::start_with(adjust), ChromeDriver::start());
        TestCtx {
            base: server.base_url(),
            port: server.port(),
            server: tokio::sync::Mutex::new(server),
            stopped: Mutex::new(Vec::new()),
            driver,
            browsers: tokio::sync::Mutex::new(Vec::new()),
        }
    }

    /// A new browser with its own profile (so its own cookies), at desktop size.
    pub(crate) async fn user(&self) -> Client {
        self.browser(false).await
    }

    /// A new browser emulating a 390×844 phone.
    pub(crate) async fn phone_user(&self) -> Client {
        self.browser(true).await
    }

    pub(crate) async fn browser(&self, phone: bool) -> Client {
        let profile = tempfile::tempdir().expect("a temporary browser profile");
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--hide-scrollbars".into(),
            "--window-size=1280,900".into(),
            "--lang=en-US".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut options = json!({ "binary": CHROMIUM });
        if phone {
            args.retain(|a| !a.starts_with("--window-size"));
            args.push("--window-size=390,844".into());
            options["mobileEmulation"] = json!({ "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 2.0, "touch": true } });
        }
        options["args"] = json!(args);
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        // Leave alert dialogs open so a test can tell that one opened.
        caps.insert("unhandledPromptBehavior".into(), json!("ignore"));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.driver.url())
            .await
            .expect("chromedriver starts a browser session");
        self.browsers.lock().await.push((client.clone(), profile));
        client
    }

    pub(crate) async fn close_browsers(&self) {
        let browsers = std::mem::take(&mut *self.browsers.lock().await);
        for (client, _profile) in browsers {
            // A session whose last window a test closed is already gone; that is fine.
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
    }

    /// Runs one DevTools protocol command in the browser `c` through chromedriver; returns its
    /// result.
    pub(crate) async fn cdp(&self, c: &Client, cmd: &str, params: Value) -> Value {
        let session = c.session_id().await.unwrap().expect("a session id");
        let answer: Value = reqwest::Client::new()
            .post(format!(
                "{}/session/{session}/goog/cdp/execute",
                self.driver.url()
            ))
            .json(&json!({"cmd": cmd, "params": params}))
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("JSON");
        assert!(answer["value"].is_object(), "{cmd} failed: {answer}");
        answer["value"].clone()
    }

    /// Cuts a browser off the network (or reconnects it) through the DevTools protocol:
    /// new connections fail and the page gets an `offline` event.
    pub(crate) async fn set_offline(&self, c: &Client, offline: bool) {
        self.cdp(c, "Network.enable", json!({})).await;
        let conditions = json!({"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1});
        self.cdp(c, "Network.emulateNetworkConditions", conditions)
            .await;
    }

    /// Stops the server; returns its data folder for `restart_server`.
    pub(crate) async fn stop_server(&self) -> PathBuf {
        let mut server = self.server.lock().await;
        server.stop().await;
        server.data_dir().to_path_buf()
    }

    /// Starts the server again on the same port and data folder.
    pub(crate) async fn restart_server(&self, data_dir: PathBuf) {
        let next = TestServer::start_on(&data_dir, self.port).await;
        let old = std::mem::replace(&mut *self.server.lock().await, next);
        self.stopped.lock().unwrap().push(old);
    }
}

/// A chromedriver on a free port, killed when dropped.
pub(crate) struct ChromeDriver {
    pub(crate) port: u16,
    pub(crate) _child: tokio::process::Child,
}

impl ChromeDriver {
    pub(crate) async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let driver = ChromeDriver {
            port,
            _child: child,
        };
        let http = reqwest::Client::new();
        eventually("chromedriver to be ready", || async {
            let status: Value = http
                .get(format!("{}/status", driver.url()))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            if status["value"]["ready"] == json!(true) {
                Ok(())
            } else {
                Err(status.to_string())
            }
        })
        .await;
        driver
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Polls `probe` until it succeeds or `WAIT` passes; the failure names what was awaited and
/// the last thing seen.
pub(crate) async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    eventually_within(what, WAIT, probe).await
}

/// [`eventually`] with a wait of its own, for what takes longer by design (paced sends).
pub(crate) async fn eventually_within<T, F, Fut>(what: &str, wait: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + wait;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Checks that `probe` keeps succeeding for `period` (for "nothing changes" assertions).
/// Fails if the members panel of `client` shows anything but `expected` during `period`.
pub(crate) async fn members_stay(client: &Client, expected: &[&str], what: &str, period: Duration) {
    consistently(what, period, || async {
        let shown = members(client).await;
        if shown == expected {
            Ok(())
        } else {
            Err(format!("{shown:?}"))
        }
    })
    .await;
}

pub(crate) async fn consistently<F, Fut>(what: &str, period: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let until = Instant::now() + period;
    while Instant::now() < until {
        if let Err(seen) = probe().await {
            panic!("expected {what}, but saw: {seen}");
        }
        tokio::time::sleep(POLL).await;
    }
}
