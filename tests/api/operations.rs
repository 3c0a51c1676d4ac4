//! Operations: the probes, the metrics listener, the structured connection log lines, and
//! backup and restore of the SQLite database.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Client, PATIENCE, TestServer, seqs};

/// The value of the sample `series` (name with its labels, as rendered) in a scrape.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{scrape}"))
        .trim()
        .parse()
        .expect("a number")
}

async fn scrape(server: &TestServer) -> String {
    let response = reqwest::get(server.metrics_url())
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("text")
}

#[tokio::test]
async fn readyz_is_ready_while_the_store_answers_and_healthz_is_ok() {
    let server = TestServer::start().await;
    let ready = reqwest::get(format!("{}/readyz", server.base_url()))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({"status": "ready"})
    );
    let live = reqwest::get(format!("{}/healthz", server.base_url()))
        .await
        .unwrap();
    assert_eq!(live.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn metrics_move_with_traffic_and_stay_off_the_public_port() {
    let mut server = TestServer::start_with(|config| {
        config.rate_limits = confab::config::RateLimits::Off;
        config.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    // The recorder is process-wide: compare against what this test starts from.
    let before = scrape(&server).await;
    let mut ann = server.client("ann").await;
    let mut ben = server.client("ben").await;
    ann.join("ops").await;
    ben.join("ops").await;
    for i in 0..5 {
        ann.say("ops", &format!("m{i}")).await;
    }
    for _ in 0..5 {
        ben.recv_until("message").await;
    }
    let during = scrape(&server).await;
    let moved = |series: &str| sample(&during, series) - sample(&before, series);
    assert!(moved("confab_messages_stored_total") >= 5.0);
    // Each of the two members got each message.
    assert!(moved("confab_deliveries_total") >= 10.0);
    assert!(moved("confab_store_batch_seconds_count") >= 1.0);
    assert!(moved("confab_delivery_seconds_count") >= 1.0);
    assert!(sample(&during, "confab_connections") >= 2.0);
    assert!(sample(&during, "confab_rooms_active") >= 1.0);
    assert!(sample(&during, "confab_members_online") >= 2.0);
    // The five messages are in the room's log, each with its frames.
    assert!(sample(&during, "confab_room_logs_bytes") >= 5.0 * 100.0);
    assert_eq!(sample(&during, "confab_build_info{version=\"0.1.0\"}"), 1.0);
    // A search is answered once the index holds the five messages, and the gauge says so by
    // then.
    ann.send(json!({"type": "search", "room": "ops", "query": "m4"}))
        .await;
    ann.recv_until("search_results").await;
    assert_eq!(
        sample(&scrape(&server).await, "confab_search_index_behind"),
        0.0
    );

    ben.close().await;
    let client_closed = "confab_disconnects_total{reason=\"client\"}";
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            let now = scrape(&server).await;
            if sample(&now, client_closed) > sample(&before, client_closed) {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the close is counted");
    assert!(sample(&closed, "confab_connections") < sample(&during, "confab_connections"));

    let public = reqwest::get(format!("{}/metrics", server.base_url()))
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);

    server.stop().await;
    let after = reqwest::get(server.metrics_url()).await;
    assert!(after.is_err(), "the metrics listener stops with the server");
    drop(ann);
}

#[tokio::test]
async fn rate_limited_requests_are_counted_by_action() {
    let server = TestServer::start_with(|config| {
        config.limit_join = "1+1/h".parse().unwrap();
        config.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let mut ann = server.client("ann").await;
    ann.join("a").await;
    ann.send(json!({"type": "join", "room": "b"})).await;
    let refused = ann.recv_until("error").await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    let now = scrape(&server).await;
    assert!(sample(&now, "confab_rate_limited_total{action=\"join\"}") >= 1.0);
}

/// Runs the real binary with `args`; returns whether it succeeded and what it printed.
async fn confab(args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .expect("run confab");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_every_acknowledged_message_elsewhere() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let server = TestServer::unlimited().await;
    let mut ann = server.client("ann").await;
    ann.join("kept").await;
    // Ann keeps talking, each message acknowledged before the next, through the backup.
    let acked = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let talker = tokio::spawn({
        let (acked, stop) = (acked.clone(), stop.clone());
        async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                i += 1;
                let seq = ann.say("kept", &format!("m{i}")).await["seq"]
                    .as_u64()
                    .unwrap();
                acked.store(seq, Ordering::SeqCst);
            }
            ann
        }
    });
    while acked.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("confab-backup.db");
    let copy = copy.to_str().unwrap();
    let data = server.data_dir().to_str().unwrap().to_owned();

    let acked_before = acked.load(Ordering::SeqCst);
    let (ok, said) = confab(&["--data-dir", &data, "backup", copy]).await;
    assert!(ok, "{said}");
    let acked_after = acked.load(Ordering::SeqCst);
    stop.cancel();
    let mut ann = talker.await.unwrap();

    // Restoring over a folder a server uses is refused, and leaves the server alone.
    let (ok, said) = confab(&["--data-dir", &data, "restore", copy]).await;
    assert!(!ok && said.contains("a server is using"), "{said}");
    ann.say("kept", "still here").await;

    let fresh = tempfile::tempdir().unwrap();
    let fresh_dir = fresh.path().join("data");
    let (ok, said) = confab(&["--data-dir", fresh_dir.to_str().unwrap(), "restore", copy]).await;
    assert!(ok, "{said}");
    let restored = TestServer::start_on(&fresh_dir, 0).await;
    let mut ben = restored.client("ben").await;
    let joined = ben.join("kept").await;
    // One snapshot: a gapless run from 1, holding everything acknowledged before the backup
    // started, and nothing that was not yet committed when it ended.
    let last = joined["last_seq"].as_u64().expect("last_seq");
    assert!(
        (acked_before..=acked_after + 1).contains(&last),
        "restored up to {last}; acknowledged {acked_before} before, {acked_after} after"
    );
    let mut all = Vec::new();
    let mut before = last + 1;
    while before > 1 {
        ben.send(json!({"type": "history", "room": "kept", "before": before, "limit": 100}))
            .await;
        let page = ben.recv_until("history").await;
        let page_seqs = seqs(&page);
        let Some(&oldest) = page_seqs.first() else {
            break;
        };
        all.splice(0..0, page_seqs);
        before = oldest;
    }
    assert_eq!(all, (1..=last).collect::<Vec<_>>());
    // Seqs go on from the backup's last one.
    assert_eq!(ben.say("kept", "next").await["seq"], last + 1);
}

#[tokio::test]
async fn json_logs_have_one_line_per_connection_open_and_close() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let data = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_confab"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(data.path())
        .env("CONFAB_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("confab starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("a log line in time")
            .expect("read")
            .expect("confab still running");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    };
    let host = loop {
        let line = next().await;
        let message = line["message"].as_str().unwrap_or_default();
        if let Some(url) = message.strip_prefix("confab serving on http://") {
            break url.trim_end_matches('/').to_owned();
        }
    };
    let mut ann = Client::connect(&format!("ws://{host}/ws?name=ann")).await;
    ann.join("r").await;
    ann.say("r", "not logged at info").await;
    ann.close().await;
    // Only connection lines from here (anything else the server logs is skipped).
    let mut next_connection_line = async || loop {
        let line = next().await;
        if line["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("connection ")
        {
            return line;
        }
    };
    let opened = next_connection_line().await;
    assert_eq!(opened["message"], "connection opened", "{opened}");
    assert_eq!(opened["level"], "INFO");
    let closed = next_connection_line().await;
    assert_eq!(closed["message"], "connection closed", "{closed}");
    assert_eq!(closed["conn"], opened["conn"]);
    assert_eq!(closed["user"], opened["user"]);
    assert_eq!(closed["reason"], "client");
    assert!(closed["duration_ms"].is_u64(), "{closed}");
}
