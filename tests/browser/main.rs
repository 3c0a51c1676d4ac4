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

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long anything a user waits for may take before the test fails.
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(40);

// ---- scenarios -----------------------------------------------------------------------------

#[tokio::test]
async fn two_users_who_open_the_same_room_from_the_lobby_see_each_other() {
    browser_test(|t| async move {
        let alice = t.user().await;
        let bob = t.user().await;
        sign_in_at_lobby(&alice, &t.base, "alice").await;
        sign_in_at_lobby(&bob, &t.base, "bob").await;
        open_room_from_lobby(&alice, "team").await;
        open_room_from_lobby(&bob, "team").await;

        wait_members(&alice, &["alice (you)", "bob"]).await;
        wait_members(&bob, &["alice", "bob (you)"]).await;
        assert_eq!(text_of(&alice, "#member-count").await, "2");
        assert_eq!(text_of(&bob, "#member-count").await, "2");
        assert_eq!(text_of(&bob, "#room-name-label").await, "team");
    })
    .await;
}

#[tokio::test]
async fn a_message_appears_in_the_other_browser_within_a_second_and_shift_enter_makes_a_new_line() {
    browser_test(|t| async move {
        let alice = t.user().await;
        let bob = t.user().await;
        enter_room(&alice, &t.base, "chat", "alice").await;
        enter_room(&bob, &t.base, "chat", "bob").await;
        wait_members(&bob, &["alice", "bob (you)"]).await;

        let composer = alice.find(Locator::Css("#composer")).await.unwrap();
        composer
            .send_keys(&format!("Hello Bob{}", Key::Enter))
            .await
            .unwrap();
        let sent_at = Instant::now();
        let seen = eventually("bob to see alice's message", || async {
            let messages = messages(&bob).await;
            messages
                .iter()
                .find(|m| m.text == "Hello Bob")
                .cloned()
                .ok_or(format!("{messages:?}"))
        })
        .await;
        let latency = sent_at.elapsed();
        assert!(
            latency < Duration::from_secs(1),
            "the message took {latency:?} to arrive"
        );
        assert_eq!(seen.author, "alice");
        assert!(!seen.own && !seen.pending);
        assert_eq!(
            value_of(&alice, "#composer").await,
            "",
            "Enter clears the composer"
        );

        // Shift+Enter inserts a newline; the modifier stays down until the NULL key releases it.
        let keys = format!(
            "line one{}{}{}line two{}",
            Key::Shift,
            Key::Enter,
            Key::Null,
            Key::Enter
        );
        composer.send_keys(&keys).await.unwrap();
        let multi = eventually("bob to see the two-line message", || async {
            let messages = messages(&bob).await;
            messages
                .iter()
                .find(|m| m.text.starts_with("line one"))
                .cloned()
                .ok_or(format!("{messages:?}"))
        })
        .await;
        assert_eq!(multi.text, "line one\nline two");
        assert_eq!(multi.author, "alice");

        // The sender sees its own copy confirmed, marked as its own, exactly once.
        let mine = eventually("alice's messages to be confirmed", || async {
            let m = messages(&alice).await;
            if m.iter().all(|m| !m.pending) && m.len() == 2 {
                Ok(m)
            } else {
                Err(format!("{m:?}"))
            }
        })
        .await;
        assert!(
            mine.iter().all(|m| m.own && m.author == "alice"),
            "{mine:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_second_tab_of_the_same_user_is_one_member_until_the_last_tab_closes() {
    browser_test(|t| async move {
        let alice = t.user().await;
        let bob = t.user().await;
        enter_room(&alice, &t.base, "tabs", "alice").await;
        enter_room(&bob, &t.base, "tabs", "bob").await;
        wait_members(&bob, &["alice", "bob (you)"]).await;

        // A second tab: same WebDriver session, so the same cookie and the same user.
        let first_tab = alice.window().await.unwrap();
        let second_tab = alice.new_window(true).await.unwrap().handle;
        alice.switch_to_window(second_tab.clone()).await.unwrap();
        alice.goto(&format!("{}/chat/tabs/", t.base)).await.unwrap();
        wait_connected(&alice).await;
        wait_members(&alice, &["alice (you)", "bob"]).await;
        // Bob's own message comes back to him after any presence the second tab caused.
        say_and_wait_confirmed(&bob, "second tab is open").await;
        members_stay(
            &bob,
            &["alice", "bob (you)"],
            "bob to see alice once",
            Duration::from_millis(800),
        )
        .await;

        // Closing one of the two tabs keeps alice in the room.
        alice.close_window().await.unwrap();
        alice.switch_to_window(first_tab).await.unwrap();
        members_stay(
            &bob,
            &["alice", "bob (you)"],
            "alice to stay a member with one tab left",
            Duration::from_millis(1500),
        )
        .await;
        assert_eq!(text_of(&bob, "#member-count").await, "2");

        // Closing the last tab removes her.
        alice.close_window().await.unwrap();
        wait_members(&bob, &["bob (you)"]).await;
        assert_eq!(text_of(&bob, "#member-count").await, "1");
    })
    .await;
}

#[tokio::test]
async fn a_big_rooms_members_panel_shows_the_count_and_pages_in_the_rest_on_scroll() {
    // 120 guests from one address: more than the default per-address caps allow.
    let no_caps =
        |config: &mut confab::Config| config.rate_limits = confab::config::RateLimits::Off;
    browser_test_with(no_caps, |t| async move {
        let mut guests = Vec::new();
        for i in 0..120 {
            let mut guest = Guest::connect(t.port, &format!("guest {i:03}")).await;
            guest.join("crowd").await;
            guests.push(guest);
        }
        let alice = t.user().await;
        enter_room(&alice, &t.base, "crowd", "alice").await;
        eventually("the member count", || async {
            let count = text_of(&alice, "#member-count").await;
            if count == "121" { Ok(()) } else { Err(count) }
        })
        .await;
        // `joined` lists the first 100; scrolling the panel down pages in the rest.
        eventually("every member listed after scrolling", || async {
            let _: Option<bool> = js(
                &alice,
                "document.getElementById('members').scrollTop = 1e9; return null;",
            )
            .await;
            let listed = members(&alice).await.len();
            if listed == 121 {
                Ok(())
            } else {
                Err(format!("{listed} listed"))
            }
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn the_lobby_shows_rooms_with_a_live_online_count() {
    browser_test(|t| async move {
        let carol = t.user().await;
        let alice = t.user().await;
        let bob = t.user().await;
        sign_in_at_lobby(&carol, &t.base, "carl").await;
        wait_lobby_live(&carol).await;
        assert!(is_displayed(&carol, "#rooms-empty").await, "an empty lobby says so");

        // A typo in the name: changing it keeps the same user.
        let id_before = session_user_id(&carol).await;
        click(&carol, "#change-name").await;
        let name = carol.find(Locator::Css("#name")).await.unwrap();
        assert_eq!(value_of(&carol, "#name").await, "carl");
        name.clear().await.unwrap();
        name.send_keys("carol").await.unwrap();
        click(&carol, "#name-submit").await;
        eventually("the new name to show", || async {
            let shown = text_of(&carol, "#me-name").await;
            if shown == "carol" && !is_displayed(&carol, "#signin").await { Ok(()) } else { Err(shown) }
        })
        .await;
        assert_eq!(session_user_id(&carol).await, id_before, "same id, new name");

        enter_room(&alice, &t.base, "lounge", "alice").await;
        wait_room_count(&carol, "lounge", 1).await;
        assert!(!is_displayed(&carol, "#rooms-empty").await);
        assert_eq!(
            js::<String>(&carol, "return document.querySelector('#rooms li[data-room=\"lounge\"] .count').textContent").await,
            "1 online"
        );
        let href: String =
            js(&carol, "return document.querySelector('#rooms li[data-room=\"lounge\"] a').getAttribute('href')").await;
        assert_eq!(href, "/chat/lounge/");

        enter_room(&bob, &t.base, "lounge", "bob").await;
        wait_room_count(&carol, "lounge", 2).await;
        enter_room(&bob, &t.base, "kitchen", "bob").await; // bob moves on: lounge 1, kitchen 1
        wait_room_count(&carol, "lounge", 1).await;
        wait_room_count(&carol, "kitchen", 1).await;
        alice.goto(&format!("{}/", t.base)).await.unwrap();
        wait_room_count(&carol, "lounge", 0).await;

        // Following the link opens the room.
        carol.find(Locator::Css("#rooms li[data-room=\"kitchen\"] a")).await.unwrap().click().await.unwrap();
        wait_connected(&carol).await;
        wait_members(&carol, &["bob", "carol (you)"]).await;
    })
    .await;
}

#[tokio::test]
async fn a_reload_shows_history_and_scrolling_up_loads_it_back_to_the_first_message() {
    browser_test(|t| async move {
        let mut seed = Guest::connect(t.port, "seed").await;
        seed.join("archive").await;
        for i in 1..=120 {
            seed.send("archive", &format!("archived message {i}")).await;
        }
        seed.wait_for_seq(120).await;

        let alice = t.user().await;
        enter_room(&alice, &t.base, "archive", "alice").await;
        wait_seq_range(&alice, 71, 120).await;
        alice.refresh().await.unwrap();
        wait_connected(&alice).await;
        wait_seq_range(&alice, 71, 120).await;
        assert!(
            !is_displayed(&alice, "#history-start").await,
            "more history exists above"
        );

        eventually(
            "scrolling up to reach seq 1 and the start of the room",
            || async {
                alice
                    .execute("document.getElementById('scroller').scrollTop = 0;", vec![])
                    .await
                    .unwrap();
                let seqs = seqs(&alice).await;
                if seqs.first() == Some(&1) && is_displayed(&alice, "#history-start").await {
                    Ok(())
                } else {
                    Err(format!("lowest seq {:?}", seqs.first()))
                }
            },
        )
        .await;
        let all = messages(&alice).await;
        let seqs: Vec<i64> = all.iter().filter_map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=120).collect::<Vec<_>>());
        assert!(
            all.iter()
                .enumerate()
                .all(|(i, m)| m.text == format!("archived message {}", i + 1))
        );
        assert_eq!(
            text_of(&alice, "#history-start").await,
            "This is the beginning of #archive"
        );

        // Reading old messages: a new one does not yank the view down, a button offers to jump.
        let top_before: f64 = js(&alice, "return document.getElementById('scroller').scrollTop").await;
        seed.send("archive", "a new message while alice reads").await;
        wait_texts_contain(&alice, "a new message while alice reads").await;
        wait_displayed(&alice, "#jump-latest").await;
        let top_after: f64 = js(&alice, "return document.getElementById('scroller').scrollTop").await;
        assert!((top_after - top_before).abs() < 2.0, "the reader's position is kept");
        click(&alice, "#jump-latest").await;
        eventually("the view to be at the newest message", || async {
            let gap: f64 = js(
                &alice,
                "const s = document.getElementById('scroller'); return s.scrollHeight - s.scrollTop - s.clientHeight;",
            )
            .await;
            if gap < 2.0 && !is_displayed(&alice, "#jump-latest").await { Ok(()) } else { Err(format!("{gap}px from the bottom")) }
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn hostile_text_is_shown_literally_and_breaks_nothing() {
    browser_test(|t| async move {
        let mallory = t.user().await;
        let bob = t.user().await;
        // Markup in a name; bidi controls are refused in names (issue 10), so they are tested
        // in the message texts below, where they stay allowed and isolated.
        let hostile_name = "<b>M</b>allory";
        enter_room(&mallory, &t.base, "safe", hostile_name).await;
        enter_room(&bob, &t.base, "safe", "bob").await;

        let long_line = "W".repeat(4000);
        let texts = [
            "<img src=x onerror=alert(1)>".to_string(),
            "<script>alert(1)</script>".to_string(),
            "<a href=\"javascript:alert(1)\">javascript:alert(1)</a>".to_string(),
            "\u{202E}gnp.exe\u{202C} and \u{2067}isolate".to_string(),
            long_line.clone(),
        ];
        for text in &texts[..4] {
            say_and_wait_confirmed(&mallory, text).await;
        }
        // 4,000 keystrokes through WebDriver are slow; put the text in and press Enter.
        mallory
            .execute(
                "const c = document.getElementById('composer'); c.value = arguments[0]; c.dispatchEvent(new Event('input'));",
                vec![json!(long_line)],
            )
            .await
            .unwrap();
        mallory.find(Locator::Css("#composer")).await.unwrap().send_keys(&Key::Enter.to_string()).await.unwrap();

        for page in [&mallory, &bob] {
            let shown = eventually("all hostile messages to arrive", || async {
                let m = messages(page).await;
                if m.len() == texts.len() && m.iter().all(|m| !m.pending) { Ok(m) } else { Err(format!("{m:?}")) }
            })
            .await;
            let shown_texts: Vec<&str> = shown.iter().map(|m| m.text.as_str()).collect();
            let expected: Vec<&str> = texts.iter().map(String::as_str).collect();
            assert_eq!(shown_texts, expected, "every text is shown exactly as typed");
            assert!(shown.iter().all(|m| m.author == hostile_name));
            let injected: u64 = js(page, "return document.querySelectorAll('#messages img, #messages script, #messages a, #messages b, #member-list b').length").await;
            assert_eq!(injected, 0, "no markup from user text reached the DOM");
            assert!(page.get_alert_text().await.is_err(), "no alert dialog opened");
            let (scroll_width, client_width): (u64, u64) = js(
                page,
                "const s = document.scrollingElement; return [s.scrollWidth, s.clientWidth];",
            )
            .await;
            assert!(scroll_width <= client_width, "no horizontal overflow: {scroll_width} > {client_width}");
            let bubble_fits: bool = js(
                page,
                "const box = document.getElementById('scroller').getBoundingClientRect();
                 return [...document.querySelectorAll('#messages .bubble')].every(b => b.getBoundingClientRect().right <= box.right + 1);",
            )
            .await;
            assert!(bubble_fits, "the 4,000-character line wraps inside the conversation");
        }
        wait_members(&bob, &[hostile_name, "bob (you)"]).await;
    })
    .await;
}

#[tokio::test]
async fn a_server_restart_loses_nothing_and_repeats_nothing() {
    browser_test(|t| async move {
        let alice = t.user().await;
        let bob = t.user().await;
        enter_room(&alice, &t.base, "ops", "alice").await;
        enter_room(&bob, &t.base, "ops", "bob").await;
        wait_members(&alice, &["alice (you)", "bob"]).await;
        say_and_wait_confirmed(&alice, "before the outage").await;
        wait_texts(&bob, &["before the outage"]).await;

        let data_dir = t.stop_server().await;
        for page in [&alice, &bob] {
            eventually("the page to say it is reconnecting", || async {
                let state = attr_of(page, "#status", "data-state").await;
                let text = text_of(page, "#status").await;
                if state == "reconnecting" && text == "Reconnecting…" && is_displayed(page, "#banner").await {
                    Ok(())
                } else {
                    Err(format!("{state} / {text}"))
                }
            })
            .await;
        }
        // Typed while both are disconnected: shown as pending, delivered later.
        type_message(&alice, "alice during the outage").await;
        type_message(&bob, "bob during the outage").await;
        for page in [&alice, &bob] {
            let pending: u64 = js(page, "return document.querySelectorAll('#messages li.message.pending[data-client-id]').length").await;
            assert_eq!(pending, 1, "the unsent message is shown as pending");
        }

        t.restart_server(data_dir).await;
        // Someone else talks right after the restart, most likely before the browsers are back.
        let mut carol = Guest::connect(t.port, "carol").await;
        carol.join("ops").await;
        for text in ["carol one", "carol two", "carol three"] {
            carol.send("ops", text).await;
        }

        let expected = [
            "before the outage",
            "alice during the outage",
            "bob during the outage",
            "carol one",
            "carol two",
            "carol three",
        ];
        let mut seen = Vec::new();
        for page in [&alice, &bob] {
            wait_connected(page).await;
            let shown = eventually("every message exactly once, in seq order", || async {
                let m = messages(page).await;
                let mut texts: Vec<&str> = m.iter().map(|m| m.text.as_str()).collect();
                texts.sort_unstable();
                let mut want = expected.to_vec();
                want.sort_unstable();
                if texts == want && m.iter().all(|m| !m.pending) { Ok(m) } else { Err(format!("{m:?}")) }
            })
            .await;
            let seqs: Vec<i64> = shown.iter().map(|m| m.seq.expect("confirmed messages carry a seq")).collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs strictly increase: {seqs:?}");
            assert_eq!(seqs, (1..=6).collect::<Vec<_>>(), "none missing, none twice");
            let carol_order: Vec<&str> =
                shown.iter().filter(|m| m.author == "carol").map(|m| m.text.as_str()).collect();
            assert_eq!(carol_order, ["carol one", "carol two", "carol three"]);
            seen.push(shown.into_iter().map(|m| (m.seq, m.text)).collect::<Vec<_>>());
        }
        assert_eq!(seen[0], seen[1], "both browsers show the same conversation");
        // A little later, still nothing doubled (a late retry must not add a copy).
        consistently("no duplicates appear later", Duration::from_millis(700), || async {
            let n = messages(&alice).await.len();
            if n == expected.len() { Ok(()) } else { Err(format!("{n} messages")) }
        })
        .await;
        assert_eq!(attr_of(&alice, "#status", "data-state").await, "connected");
        assert!(!is_displayed(&alice, "#banner").await);
    })
    .await;
}

#[tokio::test]
async fn a_browser_offline_during_a_long_gap_catches_up_on_every_message_once() {
    browser_test(|t| async move {
        let mut seed = Guest::connect(t.port, "seed").await;
        seed.join("catchup").await;
        let alice = t.user().await;
        enter_room(&alice, &t.base, "catchup", "alice").await;
        for i in 1..=5 {
            seed.send("catchup", &format!("message {i}")).await;
        }
        wait_seq_range(&alice, 1, 5).await;

        t.set_offline(&alice, true).await;
        eventually("the page to say it is reconnecting", || async {
            let state = attr_of(&alice, "#status", "data-state").await;
            if state == "reconnecting" && is_displayed(&alice, "#banner").await {
                Ok(())
            } else {
                Err(state)
            }
        })
        .await;
        type_message(&alice, "typed while offline").await;
        // More than the 200 a resume carries: the page must fetch the rest with `history`.
        for i in 6..=255 {
            seed.send("catchup", &format!("message {i}")).await;
        }
        seed.wait_for_seq(255).await;
        t.set_offline(&alice, false).await;

        let shown = eventually("all 256 messages, each once", || async {
            let m = messages(&alice).await;
            if m.len() == 256 && m.iter().all(|m| !m.pending) {
                Ok(m)
            } else {
                Err(format!("{} shown", m.len()))
            }
        })
        .await;
        let seqs: Vec<i64> = shown.iter().map(|m| m.seq.unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=256).collect::<Vec<_>>(),
            "none missing, none twice, in order"
        );
        for (i, m) in shown.iter().take(255).enumerate() {
            assert_eq!(m.text, format!("message {}", i + 1));
        }
        assert_eq!(shown[255].text, "typed while offline");
        assert!(shown[255].own);
        let notes: u64 = js(
            &alice,
            "return document.querySelectorAll('#messages li.note').length",
        )
        .await;
        assert_eq!(notes, 0, "the gap was filled, not skipped");
        let echoed = seed
            .wait_until(|f| f["type"] == "message" && f["text"] == "typed while offline")
            .await;
        assert_eq!(echoed["seq"], json!(256));
        assert_eq!(attr_of(&alice, "#status", "data-state").await, "connected");

        // Cut off right after sending: the frame goes out, then the socket is dropped before the
        // confirmation can come back (an `offline` event makes the page drop it at once). After
        // the resume the message shows once and is stored once.
        alice
            .execute(
                "const c = document.getElementById('composer');
                 c.value = 'sent just before the drop';
                 document.getElementById('composer-form').requestSubmit();
                 window.dispatchEvent(new Event('offline'));",
                vec![],
            )
            .await
            .unwrap();
        wait_connected(&alice).await;
        seed.send("catchup", "after the drop").await;
        let shown = eventually("the resumed conversation", || async {
            let m = messages(&alice).await;
            let done = m.last().is_some_and(|m| m.text == "after the drop")
                && m.iter().all(|m| !m.pending);
            if done {
                Ok(m)
            } else {
                Err(format!("{:?}", &m[m.len().saturating_sub(3)..]))
            }
        })
        .await;
        let seqs: Vec<i64> = shown.iter().map(|m| m.seq.unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=258).collect::<Vec<_>>(),
            "stored once, shown once"
        );
        assert_eq!(shown[256].text, "sent just before the drop");
    })
    .await;
}

#[tokio::test]
async fn invalid_names_and_room_names_get_a_clear_message() {
    browser_test(|t| async move {
        let user = t.user().await;
        user.goto(&format!("{}/", t.base)).await.unwrap();
        let name = user.wait().at_most(WAIT).for_element(Locator::Css("#name")).await.unwrap();

        name.send_keys("   ").await.unwrap();
        click(&user, "#name-submit").await;
        let message = wait_visible_text(&user, "#name-error").await;
        assert!(message.contains("display name"), "{message}");

        name.clear().await.unwrap();
        name.send_keys(&"x".repeat(33)).await.unwrap();
        click(&user, "#name-submit").await;
        eventually("the length rule to be explained", || async {
            let m = wait_visible_text(&user, "#name-error").await;
            if m.contains("32") { Ok(()) } else { Err(m) }
        })
        .await;
        assert_eq!(attr_of(&user, "#name-error", "role").await, "alert");

        // A control character cannot be typed through WebDriver; paste it in.
        user.execute("document.getElementById('name').value = 'bell\\u0007';", vec![]).await.unwrap();
        click(&user, "#name-submit").await;
        eventually("the control-character rule to be explained", || async {
            let m = wait_visible_text(&user, "#name-error").await;
            if m.contains("control") { Ok(()) } else { Err(m) }
        })
        .await;

        name.clear().await.unwrap();
        name.send_keys("Quinn").await.unwrap();
        click(&user, "#name-submit").await;
        eventually("the lobby to show the name", || async {
            let n = text_of(&user, "#me-name").await;
            if n == "Quinn" { Ok(()) } else { Err(n) }
        })
        .await;

        let room = user.find(Locator::Css("#room-name")).await.unwrap();
        for bad in ["no spaces", "semi;colon", &"r".repeat(65)] {
            room.clear().await.unwrap();
            room.send_keys(bad).await.unwrap();
            click(&user, "#room-submit").await;
            let message = wait_visible_text(&user, "#room-error").await;
            assert!(message.to_lowercase().contains("room name"), "{message}");
            assert_eq!(user.current_url().await.unwrap().path(), "/", "an invalid room is not opened");
        }

        // The composer refuses what the server would refuse, and says why.
        enter_room(&user, &t.base, "rules", "Quinn").await;
        let composer = user.find(Locator::Css("#composer")).await.unwrap();
        composer.send_keys(&format!("   {}", Key::Enter)).await.unwrap();
        user.execute(
            "const c = document.getElementById('composer'); c.value = 'x'.repeat(4001); c.dispatchEvent(new Event('input'));",
            vec![],
        )
        .await
        .unwrap();
        composer.send_keys(&Key::Enter.to_string()).await.unwrap();
        let message = wait_visible_text(&user, "#composer-error").await;
        assert!(message.contains("4,000"), "{message}");
        assert_eq!(attr_of(&user, "#composer-error", "role").await, "alert");
        assert!(messages(&user).await.is_empty(), "nothing was sent");
        assert_eq!(value_of(&user, "#composer").await.len(), 4001, "the text is kept for editing");

        for path in ["/chat/no%20spaces/", &format!("/chat/{}/", "r".repeat(65)), "/chat/%3Cscript%3E/"] {
            user.goto(&format!("{}{path}", t.base)).await.unwrap();
            let message = wait_visible_text(&user, "#room-invalid").await;
            assert!(message.contains("not a valid room name"), "{message}");
            let back: String = js(&user, "return document.querySelector('#room-invalid a').getAttribute('href')").await;
            assert_eq!(back, "/");
            assert!(!is_displayed(&user, "#app").await, "nothing but the message is shown");
        }
    })
    .await;
}

#[tokio::test]
async fn at_phone_width_the_room_is_usable_and_members_are_behind_a_toggle() {
    browser_test(|t| async move {
        let phone = t.phone_user().await;
        let mut guest = Guest::connect(t.port, "Jonas Weber").await;
        guest.join("mobile").await;
        enter_room(&phone, &t.base, "mobile", "Maya").await;
        let width: u64 = js(&phone, "return window.innerWidth").await;
        assert_eq!(width, 390);

        guest.send("mobile", "Are you on your phone?").await;
        wait_texts(&phone, &["Are you on your phone?"]).await;
        say_and_wait_confirmed(&phone, "Yes, on the train. Works fine!").await;
        guest.wait_for_text("Yes, on the train. Works fine!").await;

        assert!(
            !is_displayed(&phone, "#members").await,
            "the panel starts collapsed"
        );
        let toggle = phone.find(Locator::Css("#members-toggle")).await.unwrap();
        assert!(toggle.is_displayed().await.unwrap());
        assert_eq!(
            attr_of(&phone, "#members-toggle", "aria-expanded").await,
            "false"
        );
        assert_eq!(
            attr_of(&phone, "#members-toggle", "aria-controls").await,
            "members"
        );
        toggle.click().await.unwrap();
        eventually("the members panel to open", || async {
            if is_displayed(&phone, "#members").await {
                Ok(())
            } else {
                Err("hidden".into())
            }
        })
        .await;
        assert_eq!(
            attr_of(&phone, "#members-toggle", "aria-expanded").await,
            "true"
        );
        wait_members(&phone, &["Jonas Weber", "Maya (you)"]).await;
        let (scroll_width, client_width): (u64, u64) = js(
            &phone,
            "const s = document.scrollingElement; return [s.scrollWidth, s.clientWidth];",
        )
        .await;
        assert!(
            scroll_width <= client_width,
            "no horizontal overflow at phone width"
        );

        phone
            .find(Locator::Css("#members-close"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        eventually("the members panel to close", || async {
            if !is_displayed(&phone, "#members").await {
                Ok(())
            } else {
                Err("shown".into())
            }
        })
        .await;
        assert_eq!(
            attr_of(&phone, "#members-toggle", "aria-expanded").await,
            "false"
        );
    })
    .await;
}

#[tokio::test]
async fn screenshots_of_a_lively_lobby_and_room() {
    browser_test(|t| async move {
        let room = "design-review";
        let cast = [
            "Jonas Weber",
            "Priya Natarajan",
            "Tomás Ruiz",
            "Aiko Tanaka",
        ];
        let mut guests = Vec::new();
        for name in cast {
            let mut g = Guest::connect(t.port, name).await;
            g.join(room).await;
            guests.push(g);
        }
        // Other rooms with people in them, for the lobby.
        let mut extras = Vec::new();
        for (room, people) in [
            ("general", 7),
            ("release-planning", 3),
            ("random", 2),
            ("support", 1),
        ] {
            for i in 0..people {
                let mut g = Guest::connect(t.port, &format!("guest {i}")).await;
                g.join(room).await;
                extras.push(g);
            }
        }

        let maya = t.user().await;
        sign_in_at_lobby(&maya, &t.base, "Maya Chen").await;
        open_room_from_lobby(&maya, room).await;

        let script: [(usize, &str); 9] = [
            (0, "Morning! The new onboarding flow is up on staging."),
            (
                1,
                "Nice. I went through it on my phone, the progress bar feels much calmer now.",
            ),
            (1, "One thing: the skip button on step 3 is easy to miss."),
            (
                9,
                "Good catch. Should we make it a secondary button instead of a link?",
            ),
            (
                2,
                "+1, and maybe move it next to Continue so thumbs find it.",
            ),
            (3, "I can mock that up after lunch 🎨"),
            (
                9,
                "Perfect, thanks Aiko.\nI'll hold the release notes until then.",
            ),
            (0, "Sounds good. Copy review is at 3 pm, same room."),
            (2, "See you there 👋"),
        ];
        for (who, text) in script {
            if who == 9 {
                say_and_wait_confirmed(&maya, text).await;
            } else {
                guests[who].send(room, text).await;
                wait_texts_contain(&maya, text).await;
            }
        }
        wait_members(
            &maya,
            &[
                "Aiko Tanaka",
                "Jonas Weber",
                "Maya Chen (you)",
                "Priya Natarajan",
                "Tomás Ruiz",
            ],
        )
        .await;
        maya.execute("document.activeElement.blur()", vec![])
            .await
            .unwrap();
        save_screenshot(&maya, "room.png").await;

        maya.goto(&format!("{}/", t.base)).await.unwrap();
        wait_lobby_live(&maya).await;
        wait_room_count(&maya, room, 4).await;
        wait_room_count(&maya, "general", 7).await;
        save_screenshot(&maya, "lobby.png").await;

        let phone = t.phone_user().await;
        // The same person on their phone: same session cookie, so the same user.
        phone.goto(&format!("{}/healthz", t.base)).await.unwrap();
        for cookie in maya.get_all_cookies().await.unwrap() {
            phone.add_cookie(cookie).await.unwrap();
        }
        enter_room(&phone, &t.base, room, "Maya Chen").await;
        wait_texts_contain(&phone, "See you there 👋").await;
        guests[1].send(room, "Looks great on mobile too.").await;
        wait_texts_contain(&phone, "Looks great on mobile too.").await;
        phone
            .execute("document.activeElement.blur()", vec![])
            .await
            .unwrap();
        save_screenshot(&phone, "phone.png").await;
        drop(extras);
    })
    .await;
}

#[tokio::test]
async fn an_outbox_replayed_after_a_reconnect_stays_within_the_default_rate_limits() {
    // Default limits: 10 sends at once, then 2 a second. Twenty typed offline must all arrive.
    browser_test_with(
        |_| {},
        |t| async move {
            let alice = t.user().await;
            enter_room(&alice, &t.base, "replay", "alice").await;
            t.set_offline(&alice, true).await;
            eventually("the page to say it is reconnecting", || async {
                let state = attr_of(&alice, "#status", "data-state").await;
                if state == "reconnecting" {
                    Ok(())
                } else {
                    Err(state)
                }
            })
            .await;
            let typed: Vec<String> = (1..=20).map(|i| format!("offline {i}")).collect();
            for text in &typed {
                type_message(&alice, text).await;
            }
            t.set_offline(&alice, false).await;
            let shown = eventually_within(
                "every typed message stored, in the order typed",
                Duration::from_secs(40),
                || async {
                    let m = messages(&alice).await;
                    let failed: u64 = js(
                        &alice,
                        "return document.querySelectorAll('#messages li.failed').length",
                    )
                    .await;
                    assert_eq!(failed, 0, "no message may fail: {m:?}");
                    if m.len() == typed.len() && m.iter().all(|m| !m.pending) {
                        Ok(m)
                    } else {
                        Err(format!(
                            "{} confirmed",
                            m.iter().filter(|m| !m.pending).count()
                        ))
                    }
                },
            )
            .await;
            let texts: Vec<&str> = shown.iter().map(|m| m.text.as_str()).collect();
            assert_eq!(texts, typed.iter().map(String::as_str).collect::<Vec<_>>());
            let seqs: Vec<i64> = shown.iter().map(|m| m.seq.unwrap()).collect();
            assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
        },
    )
    .await;
}

#[tokio::test]
async fn people_who_share_a_name_are_told_apart_by_a_tag_and_colour_from_their_id() {
    browser_test(|t| async move {
        let alice = t.user().await;
        enter_room(&alice, &t.base, "twins", "alice").await;
        let real_id = session_user_id(&alice).await;
        let mut bob = Guest::connect(t.port, "bob").await;
        bob.join("twins").await;
        wait_members(&alice, &["alice (you)", "bob"]).await;
        assert_eq!(tags(&alice, "#member-list li").await, vec![None, None], "a unique name has no tag");

        let mut fake = Guest::connect(t.port, "Alice").await;
        fake.join("twins").await;
        fake.send("twins", "it's me, alice").await;
        fake.wait_for_text("it's me, alice").await;
        say_and_wait_confirmed(&alice, "no, I am alice").await;
        let want = |id: &str| Some(id_tag(id));
        eventually("both alices tagged in the members panel", || async {
            let mut got = tags(&alice, "#member-list li").await;
            got.sort();
            let mut expected = vec![want(&real_id), want(&fake.id), None];
            expected.sort();
            if got == expected { Ok(()) } else { Err(format!("{got:?}")) }
        })
        .await;
        assert_ne!(id_tag(&real_id), id_tag(&fake.id));
        let shown = tags(&alice, "#messages li.message").await;
        assert_eq!(shown, vec![want(&fake.id), want(&real_id)], "messages carry the tags too");
        // The avatar colour comes from the id, whatever the name.
        let colours: Vec<(String, String)> = js(
            &alice,
            "return [...document.querySelectorAll('#member-list li')].map(li =>
                [li.dataset.userId, [...li.querySelector('.avatar').classList].find(c => /^c[0-9]+$/.test(c))]);",
        )
        .await;
        for (id, colour) in colours {
            assert_eq!(colour, id_colour(&id), "colour of {id}");
        }
    })
    .await;
}

#[tokio::test]
async fn signing_up_in_the_lobby_shows_the_username_survives_a_reload_and_signing_out_returns_to_the_forms()
 {
    browser_test(|t| async move {
        let dana = t.user().await;
        dana.goto(&format!("{}/", t.base)).await.unwrap();
        wait_displayed(&dana, "#name").await;
        // The guest form stays the default; the account forms open on request.
        assert!(!is_displayed(&dana, "#signup-form").await && !is_displayed(&dana, "#login-form").await);
        for (css, autocomplete) in [
            ("#login-username", "username"),
            ("#login-password", "current-password"),
            ("#signup-username", "username"),
            ("#signup-password", "new-password"),
        ] {
            assert_eq!(attr_of(&dana, css, "autocomplete").await, autocomplete, "{css}");
            let label: String = js(&dana, &format!("return document.querySelector('label[for=\"{}\"]')?.textContent ?? ''", &css[1..])).await;
            assert!(!label.is_empty(), "{css} has a label");
        }

        click(&dana, "#show-signup").await;
        wait_displayed(&dana, "#signup-username").await;
        assert_eq!(attr_of(&dana, "#show-signup", "aria-expanded").await, "true");
        fill(&dana, "#signup-username", "Dana_R").await;
        fill(&dana, "#signup-password", "correct horse").await;
        fill(&dana, "#signup-name", "Dana").await;
        dana.execute("document.getElementById('signin').scrollIntoView({block: 'start'}); window.scrollBy(0, -16); document.activeElement.blur();", vec![])
            .await
            .unwrap();
        save_screenshot(&dana, "accounts.png").await;
        click(&dana, "#signup-submit").await;

        wait_signed_in_as(&dana, "Dana", Some("@dana_r")).await;
        wait_lobby_live(&dana).await;
        let user = session_user(&dana).await.expect("a session");
        assert_eq!((user["guest"].clone(), user["username"].clone()), (json!(false), json!("dana_r")));

        dana.refresh().await.unwrap();
        wait_signed_in_as(&dana, "Dana", Some("@dana_r")).await;

        click(&dana, "#sign-out").await;
        wait_displayed(&dana, "#name").await;
        assert!(is_displayed(&dana, "#show-login").await && is_displayed(&dana, "#show-signup").await);
        assert!(!is_displayed(&dana, "#lobby").await);
        assert!(!is_displayed(&dana, "#signed-out").await, "signing out yourself needs no warning");
        assert_eq!(session_user(&dana).await, None, "the session is gone");
    })
    .await;
}

#[tokio::test]
async fn a_guest_who_creates_an_account_in_another_tab_keeps_their_id_and_their_room_tab_carries_on()
 {
    browser_test(|t| async move {
        let alice = t.user().await;
        enter_room(&alice, &t.base, "upgrades", "alice").await;
        say_and_wait_confirmed(&alice, "said as a guest").await;
        let id_before = session_user_id(&alice).await;
        assert_eq!(
            guest_marks(&alice, "#messages li.message").await,
            vec![true]
        );
        assert_eq!(guest_marks(&alice, "#member-list li").await, vec![true]);
        // The room's account panel offers the guest an account.
        click(&alice, "#account-open").await;
        wait_displayed(&alice, "#account-create").await;
        assert_eq!(
            attr_of(&alice, "#account-create", "href").await,
            "/#create-account"
        );
        // Escape closes it, as a modal dialog should.
        alice
            .active_element()
            .await
            .unwrap()
            .send_keys(&Key::Escape.to_string())
            .await
            .unwrap();
        eventually("the panel to close", || async {
            if is_displayed(&alice, "#account-dialog").await {
                Err("open".into())
            } else {
                Ok(())
            }
        })
        .await;

        // The room stays open in its tab while a second tab follows that link and registers.
        let room_tab = alice.window().await.unwrap();
        let lobby_tab = alice.new_window(true).await.unwrap().handle;
        alice.switch_to_window(lobby_tab).await.unwrap();
        alice
            .goto(&format!("{}/#create-account", t.base))
            .await
            .unwrap();
        wait_displayed(&alice, "#signup-username").await;
        assert!(
            !is_displayed(&alice, "#name-form").await,
            "a guest upgrading is not asked for a name"
        );
        fill(&alice, "#signup-username", "alice.k").await;
        fill(&alice, "#signup-password", "a long passphrase").await;
        click(&alice, "#signup-submit").await;
        wait_signed_in_as(&alice, "alice", Some("@alice.k")).await;
        let user = session_user(&alice).await.expect("a session");
        assert_eq!(
            user["id"],
            json!(id_before),
            "registering keeps the user id"
        );
        assert_eq!(user["guest"], json!(false));

        // The room tab's socket was closed (4003, the guest session ended); it reconnects with
        // the new cookie instead of signing out, and what it sends now is the account's.
        alice.switch_to_window(room_tab).await.unwrap();
        say_and_wait_confirmed(&alice, "said with an account").await;
        assert!(!is_displayed(&alice, "#signin").await, "not signed out");
        let shown = messages(&alice).await;
        assert!(
            shown.iter().all(|m| m.own && m.author == "alice"),
            "{shown:?}"
        );
        assert_eq!(
            guest_marks(&alice, "#messages li.message").await,
            vec![true, false],
            "the earlier message keeps its guest mark, the new one has none"
        );
        eventually("the members panel to drop the guest mark", || async {
            let marks = guest_marks(&alice, "#member-list li").await;
            if marks == [false] {
                Ok(())
            } else {
                Err(format!("{marks:?}"))
            }
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_a_clear_message_and_the_right_one_signs_in() {
    browser_test(|t| async move {
        let setup = t.user().await;
        setup.goto(&format!("{}/", t.base)).await.unwrap();
        wait_displayed(&setup, "#show-signup").await;
        sign_up_at_lobby(&setup, "erin", "the right password", Some("Erin")).await;

        let erin = t.user().await;
        erin.goto(&format!("{}/", t.base)).await.unwrap();
        wait_displayed(&erin, "#show-login").await;
        click(&erin, "#show-login").await;
        wait_displayed(&erin, "#login-username").await;
        // By keyboard: the form opened with the username focused, Enter submits.
        let focused: String = js(&erin, "return document.activeElement.id").await;
        assert_eq!(focused, "login-username");
        fill(&erin, "#login-username", "ERIN").await;
        fill(
            &erin,
            "#login-password",
            &format!("the wrong password{}", Key::Enter),
        )
        .await;
        let message = wait_visible_text(&erin, "#login-error").await;
        assert_eq!(message, "Wrong username or password.");
        assert_eq!(
            attr_of(&erin, "#login-error", "data-code").await,
            "invalid_credentials"
        );
        assert_eq!(
            attr_of(&erin, "#login-error", "aria-live").await,
            "assertive"
        );
        assert_eq!(
            attr_of(&erin, "#login-password", "aria-invalid").await,
            "true"
        );
        assert_eq!(
            value_of(&erin, "#login-password").await,
            "",
            "the wrong password is cleared"
        );
        assert_eq!(session_user(&erin).await, None);

        fill(
            &erin,
            "#login-password",
            &format!("the right password{}", Key::Enter),
        )
        .await;
        wait_signed_in_as(&erin, "Erin", Some("@erin")).await;
        assert!(!is_displayed(&erin, "#login-error").await);
    })
    .await;
}

#[tokio::test]
async fn signing_out_another_device_from_the_account_panel_signs_that_browser_out_of_its_room() {
    browser_test(|t| async move {
        let laptop = t.user().await;
        laptop.goto(&format!("{}/", t.base)).await.unwrap();
        wait_displayed(&laptop, "#show-signup").await;
        sign_up_at_lobby(&laptop, "frank", "frank's password", Some("Frank")).await;
        wait_lobby_live(&laptop).await;

        let phone = t.user().await;
        phone.goto(&format!("{}/", t.base)).await.unwrap();
        wait_displayed(&phone, "#show-login").await;
        click(&phone, "#show-login").await;
        fill(&phone, "#login-username", "frank").await;
        fill(
            &phone,
            "#login-password",
            &format!("frank's password{}", Key::Enter),
        )
        .await;
        wait_signed_in_as(&phone, "Frank", Some("@frank")).await;
        open_room_from_lobby(&phone, "devices").await;

        click(&laptop, "#account-open").await;
        let sessions = eventually("both sessions listed", || async {
            let rows: Vec<(bool, String)> = js(
                &laptop,
                "return [...document.querySelectorAll('#account-sessions li')].map(li =>
                    [li.querySelector('.this-device') !== null, li.textContent]);",
            )
            .await;
            if rows.len() == 2 {
                Ok(rows)
            } else {
                Err(format!("{rows:?}"))
            }
        })
        .await;
        assert_eq!(
            sessions.iter().filter(|(this, _)| *this).count(),
            1,
            "{sessions:?}"
        );
        assert!(
            sessions
                .iter()
                .all(|(_, text)| text.contains("Headless Chrome on Linux")),
            "{sessions:?}"
        );
        assert_eq!(text_of(&laptop, "#account-username").await, "@frank");
        save_screenshot(&laptop, "account-panel.png").await;

        click(
            &laptop,
            "#account-sessions li:not(.current) .sign-out-session",
        )
        .await;
        eventually("the other session to leave the list", || async {
            let left: u64 = js(
                &laptop,
                "return document.querySelectorAll('#account-sessions li').length",
            )
            .await;
            if left == 1 {
                Ok(())
            } else {
                Err(format!("{left} listed"))
            }
        })
        .await;

        // The phone's room notices at once (its socket closes with 4003) and says why.
        let notice = wait_visible_text(&phone, "#signed-out").await;
        assert!(notice.contains("You were signed out"), "{notice}");
        assert!(is_displayed(&phone, "#name").await && !is_displayed(&phone, "#app").await);
        assert_eq!(session_user(&phone).await, None);
        // The laptop keeps its session and its live lobby.
        assert_eq!(
            session_user(&laptop).await.expect("still signed in")["username"],
            json!("frank")
        );
        wait_lobby_live(&laptop).await;
    })
    .await;
}

#[tokio::test]
async fn guests_are_marked_in_messages_and_members_and_accounts_are_not() {
    browser_test(|t| async move {
        let mut gus = Guest::connect(t.port, "Gus").await;
        gus.join("mixed").await;
        gus.send("mixed", "hello from a guest").await;
        gus.wait_for_text("hello from a guest").await;

        let hana = t.user().await;
        hana.goto(&format!("{}/", t.base)).await.unwrap();
        wait_displayed(&hana, "#show-signup").await;
        sign_up_at_lobby(&hana, "hana", "hana's password", Some("Hana")).await;
        open_room_from_lobby(&hana, "mixed").await;
        say_and_wait_confirmed(&hana, "hello from an account").await;
        wait_members(&hana, &["Gus", "Hana (you)"]).await;

        assert_eq!(guest_marks(&hana, "#messages li.message").await, vec![true, false]);
        assert_eq!(guest_marks(&hana, "#member-list li").await, vec![true, false]);
        let mark: (String, String) = js(
            &hana,
            "const m = document.querySelector('#member-list .guest-mark'); return [m.textContent, m.title];",
        )
        .await;
        assert_eq!(mark.0, "guest", "a word, not only a colour");
        assert!(!mark.1.is_empty(), "with an explanation");
    })
    .await;
}
#[tokio::test]
async fn a_private_room_made_in_the_lobby_is_locked_hidden_and_refused_until_its_owner_adds_someone()
 {
    browser_test(|t| async move {
        let olga = t.user().await;
        sign_up(&olga, &t.base, "olga", "Olga").await;
        click(&olga, "#create-room-toggle").await;
        wait_displayed(&olga, "#create-room-name").await;
        fill(&olga, "#create-room-name", "secret-plans").await;
        fill(&olga, "#create-room-topic", "Only for the two of us").await;
        click(&olga, "#create-room-private").await;
        click(&olga, "#create-room-submit").await;
        wait_connected(&olga).await;
        assert_eq!(
            olga.current_url().await.unwrap().path(),
            "/chat/secret-plans/"
        );
        assert_eq!(
            wait_visible_text(&olga, "#room-topic").await,
            "Only for the two of us"
        );

        // In her lobby it is listed, with a lock that says "private".
        olga.goto(&format!("{}/", t.base)).await.unwrap();
        wait_lobby_live(&olga).await;
        let lock = eventually("the private room with its lock", || async {
            let label: Option<String> = js(
                &olga,
                "const l = document.querySelector('#rooms li[data-room=\"secret-plans\"] .lock-icon');
                 return l ? l.getAttribute('aria-label') : null;",
            )
            .await;
            label.ok_or_else(|| "no lock".to_string())
        })
        .await;
        assert_eq!(lock, "private");

        // Someone else: not in their lobby, and refused at its address with a clear notice.
        let pete = t.user().await;
        sign_up(&pete, &t.base, "pete", "Pete").await;
        wait_lobby_live(&pete).await;
        assert!(
            !js::<bool>(
                &pete,
                "return document.querySelector('#rooms li[data-room=\"secret-plans\"]') !== null"
            )
            .await,
            "another account's lobby does not list the private room"
        );
        pete.goto(&format!("{}/chat/secret-plans/", t.base))
            .await
            .unwrap();
        let notice = wait_visible_text(&pete, "#room-closed-text").await;
        assert_eq!(
            notice,
            "You can’t join this room (it is private, or you are banned)."
        );
        assert!(js::<bool>(&pete, "return document.querySelector('#composer').disabled").await);

        // The owner adds him by username in the settings panel.
        olga.goto(&format!("{}/chat/secret-plans/", t.base))
            .await
            .unwrap();
        wait_connected(&olga).await;
        click(&olga, "#room-settings-open").await;
        wait_displayed(&olga, "#room-add-username").await;
        fill(&olga, "#room-add-username", "pete").await;
        click(&olga, "#room-add-submit").await;
        let status = wait_visible_text(&olga, "#room-settings-status").await;
        assert_eq!(status, "@pete is now a member.");
        eventually("Pete listed as a member", || async {
            let role = text_of(&olga, "#room-members li[data-username=\"pete\"] .role-pill").await;
            if role == "Member" { Ok(()) } else { Err(role) }
        })
        .await;
        assert_eq!(
            text_of(&olga, "#room-members li[data-username=\"olga\"] .role-pill").await,
            "Owner"
        );
        olga.execute("document.activeElement.blur()", vec![])
            .await
            .unwrap();
        save_screenshot(&olga, "room-settings.png").await;

        pete.goto(&format!("{}/chat/secret-plans/", t.base))
            .await
            .unwrap();
        wait_connected(&pete).await;
        wait_members(&pete, &["Olga", "Pete (you)"]).await;
        assert!(!is_displayed(&pete, "#room-closed").await);
    })
    .await;
}

#[tokio::test]
async fn a_moderator_bans_someone_from_the_settings_panel_and_their_open_room_says_so_and_stops() {
    browser_test(|t| async move {
        let olga = t.user().await;
        sign_up(&olga, &t.base, "olga", "Olga").await;
        let mia = t.user().await;
        sign_up(&mia, &t.base, "mia", "Mia").await;
        let ben = t.user().await;
        sign_up(&ben, &t.base, "ben", "Ben").await;
        let ben_id = session_user_id(&ben).await;
        api_as(&olga, "POST", "/api/rooms", json!({"name": "lounge"})).await;
        api_as(
            &olga,
            "PUT",
            "/api/rooms/lounge/roles/mia",
            json!({"role": "moderator"}),
        )
        .await;

        // Ben is here without a role (a public room); Mia moderates.
        open_room_from_lobby(&ben, "lounge").await;
        open_room_from_lobby(&mia, "lounge").await;
        wait_members(&mia, &["Ben", "Mia (you)"]).await;
        click(&mia, "#room-settings-open").await;
        let ban = format!("#room-members li[data-user-id=\"{ben_id}\"] .ban");
        wait_displayed(&mia, &ban).await;
        assert_eq!(
            text_of(&mia, "#room-your-role").await,
            "Moderator",
            "{}",
            text_of(&mia, "#room-dialog").await
        );
        assert!(
            js::<bool>(&mia, "return document.querySelector('#room-dialog .role-select') === null").await,
            "only the owner sets roles"
        );
        assert!(
            js::<bool>(
                &mia,
                "return document.querySelector('#room-members li[data-username=\"olga\"] .ban') === null"
            )
            .await,
            "nobody removes the owner"
        );
        click(&mia, &ban).await;
        let status = wait_visible_text(&mia, "#room-settings-status").await;
        assert!(status.starts_with("Ben was banned"), "{status}");

        let notice = wait_visible_text(&ben, "#room-closed-text").await;
        assert_eq!(notice, "You were banned from this room.");
        assert!(js::<bool>(&ben, "return document.querySelector('#composer').disabled").await);
        assert!(js::<bool>(&ben, "return document.querySelector('#send').disabled").await);
        assert_eq!(text_of(&ben, "#status").await, "Not in this room");
        wait_members(&mia, &["Mia (you)"]).await;

        // Coming back is refused, with the same notice as a private room.
        ben.refresh().await.unwrap();
        let notice = wait_visible_text(&ben, "#room-closed-text").await;
        assert_eq!(
            notice,
            "You can’t join this room (it is private, or you are banned)."
        );
    })
    .await;
}

#[tokio::test]
async fn message_in_the_members_panel_opens_a_direct_message_named_for_the_other_person() {
    browser_test(|t| async move {
        let dora = t.user().await;
        sign_up(&dora, &t.base, "dora", "Dora").await;
        let eli = t.user().await;
        sign_up(&eli, &t.base, "eli", "Eli").await;
        let eli_id = session_user_id(&eli).await;
        let mut gus = Guest::connect(t.port, "Gus").await;
        gus.join("hall").await;
        open_room_from_lobby(&eli, "hall").await;
        open_room_from_lobby(&dora, "hall").await;
        wait_members(&dora, &["Dora (you)", "Eli", "Gus"]).await;
        let offered: Vec<String> = js(
            &dora,
            "return [...document.querySelectorAll('#member-list li')].filter(li => li.querySelector('.member-message'))
                .map(li => li.dataset.userId);",
        )
        .await;
        assert_eq!(offered, vec![eli_id.clone()], "accounts only, not yourself, not guests");

        click(&dora, &format!("#member-list li[data-user-id=\"{eli_id}\"] .member-message")).await;
        eventually("the direct message to open", || async {
            let path = dora.current_url().await.unwrap().path().to_owned();
            if path.starts_with("/chat/dm-") { Ok(()) } else { Err(path) }
        })
        .await;
        wait_connected(&dora).await;
        eventually("the other person's name as the title", || async {
            let title = text_of(&dora, "#room-name-label").await;
            if title == "Eli" { Ok(()) } else { Err(title) }
        })
        .await;
        assert!(!is_displayed(&dora, "#room-title .hash").await);
        assert_eq!(
            wait_visible_text(&dora, "#room-topic").await,
            "Direct messages with @eli"
        );
        say_and_wait_confirmed(&dora, "just between us").await;
        let dm_path = dora.current_url().await.unwrap().path().to_owned();

        // Eli finds it in the lobby's "Direct messages", named for Dora.
        eli.goto(&format!("{}/", t.base)).await.unwrap();
        wait_lobby_live(&eli).await;
        let listed: Vec<(String, String)> = eventually("the direct message in Eli's lobby", || async {
            let rows: Vec<(String, String)> = js(
                &eli,
                "return [...document.querySelectorAll('#dm-list li')].map(li =>
                    [li.querySelector('.room-name').textContent, li.querySelector('a').getAttribute('href')]);",
            )
            .await;
            if rows.is_empty() { Err("none".into()) } else { Ok(rows) }
        })
        .await;
        assert_eq!(listed, vec![("Dora".to_owned(), dm_path.clone())]);
        assert!(
            !js::<bool>(&eli, "return document.querySelector('#rooms li[data-room^=\"dm-\"]') !== null").await,
            "a direct message is not listed among the rooms"
        );
        click(&eli, "#dm-list li a").await;
        wait_connected(&eli).await;
        wait_texts(&eli, &["just between us"]).await;
        eventually("Dora's name as the title", || async {
            let title = text_of(&eli, "#room-name-label").await;
            if title == "Dora" { Ok(()) } else { Err(title) }
        })
        .await;
        assert!(
            js::<bool>(&eli, "return document.querySelector('#member-list .member-message') === null").await,
            "no Message action inside a direct message"
        );
    })
    .await;
}

/// Creates an account `username` with display name `name` from the lobby's sign-up form.
async fn sign_up(c: &Client, base: &str, username: &str, name: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    wait_displayed(c, "#show-signup").await;
    sign_up_at_lobby(c, username, "a long enough password", Some(name)).await;
}

/// One HTTP API request from the browser `c` (its cookie, its origin); panics on an error.
async fn api_as(c: &Client, method: &str, path: &str, body: Value) -> Value {
    let script = "const [method, path, body, done] = arguments;
        fetch(path, {method, headers: {'content-type': 'application/json'}, body: JSON.stringify(body)})
            .then(r => r.text().then(text => done({status: r.status, text})), e => done({status: 0, text: String(e)}));";
    let answer = c
        .execute_async(script, vec![json!(method), json!(path), body])
        .await
        .expect("script runs");
    let status = answer["status"].as_u64().unwrap_or(0);
    assert!((200..300).contains(&status), "{method} {path}: {answer}");
    serde_json::from_str(answer["text"].as_str().unwrap_or("")).unwrap_or(Value::Null)
}

#[tokio::test]
async fn deleting_ones_own_message_asks_first_then_leaves_a_placeholder_everywhere_even_after_a_reload()
 {
    browser_test(|t| async move {
        let alice = t.user().await;
        let bob = t.user().await;
        enter_room(&alice, &t.base, "oops", "alice").await;
        enter_room(&bob, &t.base, "oops", "bob").await;
        wait_members(&bob, &["alice", "bob (you)"]).await;
        say_and_wait_confirmed(&alice, "keep this").await;
        say_and_wait_confirmed(&alice, "regret this").await;
        wait_texts(&bob, &["keep this", "regret this"]).await;

        // By keyboard: Enter on Delete asks first, with the safe choice focused; Escape backs out
        // to the Delete button and nothing is deleted.
        press_delete(&alice, 2).await;
        wait_displayed(&alice, "#messages li[data-seq='2'] .confirm-delete").await;
        let focused: String = js(&alice, "return document.activeElement.className").await;
        assert!(
            focused.contains("confirm-no"),
            "Cancel has the focus: {focused}"
        );
        let question = text_of(&alice, "#messages li[data-seq='2'] .confirm-delete span").await;
        assert_eq!(question, "Delete this message for everyone?");
        alice
            .active_element()
            .await
            .unwrap()
            .send_keys(&Key::Escape.to_string())
            .await
            .unwrap();
        eventually("the question to go, focus back on Delete", || async {
            let asking = is_displayed(&alice, "#messages li[data-seq='2'] .confirm-delete").await;
            let focused: String = js(&alice, "return document.activeElement.className").await;
            if !asking && focused.contains("message-delete") {
                Ok(())
            } else {
                Err(focused)
            }
        })
        .await;
        assert_eq!(
            texts(&bob).await,
            ["keep this", "regret this"],
            "nothing deleted yet"
        );

        press_delete(&alice, 2).await;
        click(&alice, "#messages li[data-seq='2'] .confirm-yes").await;
        for page in [&alice, &bob] {
            wait_placeholder(page, 2, "alice").await;
            assert_eq!(texts(page).await, ["keep this", "Message deleted"]);
            assert!(
                !dom_contains(page, "regret this").await,
                "the deleted text left the DOM"
            );
            assert!(
                delete_offered(page).await.iter().all(|(seq, _)| *seq != 2),
                "nothing to delete on a placeholder"
            );
        }

        // The live event moved the resume cursor: a resume would not replay it.
        assert_eq!(resume_cursor_after_a_drop(&t, &bob).await, Some(3));

        // A reload shows the placeholder too (a plain join carries the tombstone).
        for page in [&bob, &alice] {
            page.refresh().await.unwrap();
            wait_connected(page).await;
            wait_placeholder(page, 2, "alice").await;
            assert_eq!(texts(page).await, ["keep this", "Message deleted"]);
            assert!(!dom_contains(page, "regret this").await);
        }
        // The conversation goes on below the placeholder.
        say_and_wait_confirmed(&bob, "noted").await;
        wait_texts(&alice, &["keep this", "Message deleted", "noted"]).await;
        assert_eq!(seqs(&alice).await, [1, 2, 4]);
    })
    .await;
}

#[tokio::test]
async fn delete_is_offered_on_ones_own_messages_and_to_an_administrator_on_everyones() {
    browser_test(|t| async move {
        let alice = t.user().await;
        let bob = t.user().await;
        enter_room(&alice, &t.base, "mine", "alice").await;
        enter_room(&bob, &t.base, "mine", "bob").await;
        wait_members(&bob, &["alice", "bob (you)"]).await;
        say_and_wait_confirmed(&alice, "from alice").await;
        say_and_wait_confirmed(&bob, "from bob").await;
        wait_texts(&alice, &["from alice", "from bob"]).await;
        wait_texts(&bob, &["from alice", "from bob"]).await;

        assert_eq!(delete_offered(&alice).await, [(1, true), (2, false)]);
        assert_eq!(delete_offered(&bob).await, [(1, false), (2, true)]);
        assert_eq!(
            attr_of(
                &bob,
                "#messages li[data-seq='2'] .message-delete",
                "aria-label"
            )
            .await,
            "Delete your message"
        );

        // A server administrator moderates every room: Delete on everyone's messages.
        let moderator = t.user().await;
        moderator.goto(&format!("{}/", t.base)).await.unwrap();
        wait_displayed(&moderator, "#show-signup").await;
        sign_up_at_lobby(&moderator, "mod", "the moderator's password", Some("Mod")).await;
        let (granted, said) = t.server.lock().await.admin(&["grant", "mod"]).await;
        assert!(granted, "{said}");
        open_room_from_lobby(&moderator, "mine").await;
        wait_texts(&moderator, &["from alice", "from bob"]).await;
        assert_eq!(delete_offered(&moderator).await, [(1, true), (2, true)]);
        assert_eq!(
            attr_of(
                &moderator,
                "#messages li[data-seq='2'] .message-delete",
                "aria-label"
            )
            .await,
            "Delete message from bob"
        );
        press_delete(&moderator, 2).await;
        click(&moderator, "#messages li[data-seq='2'] .confirm-yes").await;
        for page in [&moderator, &alice, &bob] {
            wait_placeholder(page, 2, "bob").await;
            assert!(!dom_contains(page, "from bob").await);
        }
        assert_eq!(delete_offered(&alice).await, [(1, true)]);
    })
    .await;
}

#[tokio::test]
async fn a_rooms_owner_is_offered_delete_on_everyones_messages_there() {
    browser_test(|t| async move {
        let olga = t.user().await;
        sign_up(&olga, &t.base, "olga", "Olga").await;
        click(&olga, "#create-room-toggle").await;
        wait_displayed(&olga, "#create-room-name").await;
        fill(&olga, "#create-room-name", "owned").await;
        click(&olga, "#create-room-submit").await;
        wait_connected(&olga).await;
        let mut carol = Guest::connect(t.port, "carol").await;
        carol.join("owned").await;
        carol.send("owned", "a guest's line").await;
        wait_texts(&olga, &["a guest's line"]).await;
        // Not her message, not a server administrator: the room's owner moderates it.
        eventually("Delete offered to the owner", || async {
            match delete_offered(&olga).await.as_slice() {
                [(1, true)] => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        press_delete(&olga, 1).await;
        click(&olga, "#messages li[data-seq='1'] .confirm-yes").await;
        wait_placeholder(&olga, 1, "carol").await;
    })
    .await;
}

#[tokio::test]
async fn a_deletion_made_while_a_browser_was_offline_is_replayed_when_it_resumes() {
    browser_test(|t| async move {
        let mut carol = Guest::connect(t.port, "carol").await;
        carol.join("away").await;
        let bob = t.user().await;
        enter_room(&bob, &t.base, "away", "bob").await;
        carol.send("away", "soon gone").await;
        carol.send("away", "stays").await;
        wait_texts(&bob, &["soon gone", "stays"]).await;

        t.set_offline(&bob, true).await;
        eventually("the page to say it is reconnecting", || async {
            let state = attr_of(&bob, "#status", "data-state").await;
            if state == "reconnecting" {
                Ok(())
            } else {
                Err(state)
            }
        })
        .await;
        carol
            .frame(json!({"type": "delete", "room": "away", "seq": 1, "client_id": "carol-del"}))
            .await;
        let deleted = carol.next_of("deleted").await;
        assert_eq!(
            (deleted["target"].clone(), deleted["seq"].clone()),
            (json!(1), json!(3))
        );
        assert!(
            dom_contains(&bob, "soon gone").await,
            "offline, bob cannot know yet"
        );

        t.set_offline(&bob, false).await;
        wait_connected(&bob).await;
        wait_texts(&bob, &["Message deleted", "stays"]).await;
        wait_placeholder(&bob, 1, "carol").await;
        assert!(!dom_contains(&bob, "soon gone").await);
        assert_eq!(seqs(&bob).await, [1, 2], "the event is applied, not shown");

        // The replayed event moved the resume cursor: the next resume starts after it.
        assert_eq!(resume_cursor_after_a_drop(&t, &bob).await, Some(3));
        carol.send("away", "after the deletion").await;
        wait_texts(&bob, &["Message deleted", "stays", "after the deletion"]).await;
        assert_eq!(seqs(&bob).await, [1, 2, 4]);
    })
    .await;
}

#[tokio::test]
async fn a_refused_deletion_is_explained_beside_the_message_which_keeps_its_text() {
    // Two sends an hour: the two messages use them up, so the deletion (paid from the same
    // bucket) is refused with rate_limited.
    let tight = |config: &mut confab::Config| config.limit_send = "2+2/h".parse().unwrap();
    browser_test_with(tight, |t| async move {
        let alice = t.user().await;
        enter_room(&alice, &t.base, "slow", "alice").await;
        say_and_wait_confirmed(&alice, "first").await;
        say_and_wait_confirmed(&alice, "second").await;

        press_delete(&alice, 2).await;
        click(&alice, "#messages li[data-seq='2'] .confirm-yes").await;
        let error =
            wait_visible_text(&alice, "#messages li[data-seq='2'] .delete-status.error").await;
        assert!(
            error
                .starts_with("Not deleted: too many messages and deletions at once. Try again in ")
                && error.ends_with(" minutes."),
            "{error}"
        );
        assert_eq!(
            attr_of(
                &alice,
                "#messages li[data-seq='2'] .delete-status.error",
                "role"
            )
            .await,
            "alert"
        );
        assert_eq!(
            texts(&alice).await,
            ["first", "second"],
            "nothing was deleted"
        );
        assert_eq!(
            delete_offered(&alice).await,
            [(1, true), (2, true)],
            "Delete can be tried again"
        );
        assert!(!is_displayed(&alice, "#messages li[data-seq='2'] .confirm-delete").await);
    })
    .await;
}

#[tokio::test]
async fn a_reply_quotes_its_original_and_reactions_toggle_live_in_both_browsers() {
    browser_test(|t| async move {
        let alice = t.user().await;
        let bob = t.user().await;
        enter_room(&alice, &t.base, "plans", "alice").await;
        enter_room(&bob, &t.base, "plans", "bob").await;
        wait_members(&bob, &["alice", "bob (you)"]).await;
        say_and_wait_confirmed(&bob, "Lunch on Friday at the usual place?").await;
        wait_texts(&alice, &["Lunch on Friday at the usual place?"]).await;

        // Alice replies by keyboard: the bar over the composer says what she answers.
        press(&alice, "#messages li[data-seq='1'] .message-reply").await;
        let bar = wait_visible_text(&alice, "#reply-label").await;
        assert_eq!(bar, "Replying to bob: Lunch on Friday at the usual place?");
        let focused: String = js(&alice, "return document.activeElement.id").await;
        assert_eq!(
            focused, "composer",
            "replying puts the focus in the composer"
        );
        say_and_wait_confirmed(&alice, "Friday works").await;
        assert!(
            !is_displayed(&alice, "#reply-bar").await,
            "the bar goes once sent"
        );

        for page in [&alice, &bob] {
            wait_texts(
                page,
                &["Lunch on Friday at the usual place?", "Friday works"],
            )
            .await;
            let quote = "#messages li[data-seq='2'] .reply-quote";
            wait_displayed(page, quote).await;
            assert_eq!(attr_of(page, quote, "data-target").await, "1");
            assert_eq!(
                text_of(page, &format!("{quote} .quote-author")).await,
                "bob"
            );
            assert_eq!(
                text_of(page, &format!("{quote} .quote-text")).await,
                "Lunch on Friday at the usual place?"
            );
        }
        // Activating the quote takes the reader to the original, focused.
        press(&bob, "#messages li[data-seq='2'] .reply-quote").await;
        eventually("the original to have the focus", || async {
            let seq: Option<String> = js(
                &bob,
                "return document.activeElement.closest('li.message')?.dataset.seq ?? null;",
            )
            .await;
            if seq.as_deref() == Some("1") {
                Ok(())
            } else {
                Err(format!("{seq:?}"))
            }
        })
        .await;

        // Bob reacts 👍 to Alice's reply from the picker, by keyboard.
        press(&bob, "#messages li[data-seq='2'] .message-react").await;
        wait_displayed(&bob, "#messages li[data-seq='2'] .reaction-picker").await;
        let first: String = js(&bob, "return document.activeElement.dataset.emoji ?? '';").await;
        assert_eq!(
            first, "👍",
            "the picker opens with the focus on its first emoji"
        );
        bob.active_element()
            .await
            .unwrap()
            .send_keys(&Key::Enter.to_string())
            .await
            .unwrap();
        wait_chips(&alice, 2, &[("👍", 1, false)]).await;
        wait_chips(&bob, 2, &[("👍", 1, true)]).await;
        assert!(!is_displayed(&bob, "#messages li[data-seq='2'] .reaction-picker").await);
        let title = attr_of(&alice, "#messages li[data-seq='2'] .reaction-chip", "title").await;
        assert_eq!(title, "👍 bob");

        // Alice adds hers with the chip; then Bob takes his back with his.
        click(&alice, "#messages li[data-seq='2'] .reaction-chip").await;
        wait_chips(&alice, 2, &[("👍", 2, true)]).await;
        wait_chips(&bob, 2, &[("👍", 2, true)]).await;
        let title = attr_of(&bob, "#messages li[data-seq='2'] .reaction-chip", "title").await;
        assert_eq!(title, "👍 bob and alice");
        click(&bob, "#messages li[data-seq='2'] .reaction-chip").await;
        wait_chips(&alice, 2, &[("👍", 1, true)]).await;
        wait_chips(&bob, 2, &[("👍", 1, false)]).await;

        // Three reaction events (seqs 3 to 5) moved the resume cursor.
        assert_eq!(resume_cursor_after_a_drop(&t, &bob).await, Some(5));
        // A reload shows the reply and the reaction from the join.
        bob.refresh().await.unwrap();
        wait_connected(&bob).await;
        wait_chips(&bob, 2, &[("👍", 1, false)]).await;
        assert_eq!(
            text_of(
                &bob,
                "#messages li[data-seq='2'] .reply-quote .quote-author"
            )
            .await,
            "bob"
        );
    })
    .await;
}

#[tokio::test]
async fn editing_ones_own_message_changes_it_in_place_for_everyone_even_after_a_reload() {
    browser_test(|t| async move {
        let alice = t.user().await;
        let bob = t.user().await;
        enter_room(&alice, &t.base, "typos", "alice").await;
        enter_room(&bob, &t.base, "typos", "bob").await;
        wait_members(&bob, &["alice", "bob (you)"]).await;
        say_and_wait_confirmed(&alice, "helo wrold").await;
        wait_texts(&bob, &["helo wrold"]).await;
        assert!(
            !is_displayed(&bob, "#messages li[data-seq='1'] .message-edit").await,
            "only the author may edit"
        );

        // Escape backs out of the editor, focus back on Edit, nothing changed.
        let editor = "#messages li[data-seq='1'] .edit-box";
        press(&alice, "#messages li[data-seq='1'] .message-edit").await;
        wait_displayed(&alice, editor).await;
        assert_eq!(value_of(&alice, editor).await, "helo wrold");
        let escape = Key::Escape.to_string();
        alice
            .active_element()
            .await
            .unwrap()
            .send_keys(&escape)
            .await
            .unwrap();
        eventually("the editor to close, focus back on Edit", || async {
            let open = is_displayed(&alice, editor).await;
            let focused: String = js(&alice, "return document.activeElement.className").await;
            if !open && focused.contains("message-edit") {
                Ok(())
            } else {
                Err(focused)
            }
        })
        .await;
        assert_eq!(texts(&alice).await, ["helo wrold"]);

        // Enter saves; Shift+Enter makes a new line.
        press(&alice, "#messages li[data-seq='1'] .message-edit").await;
        wait_displayed(&alice, editor).await;
        let newline = format!("{}{}{}", Key::Shift, Key::Enter, Key::Null);
        let box_ = alice.find(Locator::Css(editor)).await.unwrap();
        box_.clear().await.unwrap();
        box_.send_keys(&format!("hello world{newline}again{}", Key::Enter))
            .await
            .unwrap();
        for page in [&alice, &bob] {
            wait_texts(page, &["hello world\nagain"]).await;
            let mark = wait_visible_text(page, "#messages li[data-seq='1'] .edited-mark").await;
            assert_eq!(mark, "(edited)");
            let title = attr_of(page, "#messages li[data-seq='1'] .edited-mark", "title").await;
            assert!(title.starts_with("Edited "), "{title}");
        }
        assert!(!is_displayed(&alice, editor).await, "the editor closed");

        // An empty edit is refused inline; the message keeps its text.
        press(&alice, "#messages li[data-seq='1'] .message-edit").await;
        wait_displayed(&alice, editor).await;
        let box_ = alice.find(Locator::Css(editor)).await.unwrap();
        box_.clear().await.unwrap();
        box_.send_keys(&Key::Enter.to_string()).await.unwrap();
        let error = wait_visible_text(&alice, "#messages li[data-seq='1'] .edit-error").await;
        assert!(error.starts_with("A message can’t be empty"), "{error}");
        alice
            .active_element()
            .await
            .unwrap()
            .send_keys(&escape)
            .await
            .unwrap();
        wait_texts(&alice, &["hello world\nagain"]).await;

        // The edit event moved Bob's resume cursor, and a reload shows the edited text.
        assert_eq!(resume_cursor_after_a_drop(&t, &bob).await, Some(2));
        bob.refresh().await.unwrap();
        wait_connected(&bob).await;
        wait_texts(&bob, &["hello world\nagain"]).await;
        assert_eq!(
            wait_visible_text(&bob, "#messages li[data-seq='1'] .edited-mark").await,
            "(edited)"
        );
        assert!(!dom_contains(&bob, "helo wrold").await);
    })
    .await;
}

#[tokio::test]
async fn the_others_see_who_is_typing_until_their_message_arrives() {
    browser_test(|t| async move {
        let alice = t.user().await;
        let bob = t.user().await;
        enter_room(&alice, &t.base, "quiet", "alice").await;
        enter_room(&bob, &t.base, "quiet", "bob").await;
        wait_members(&bob, &["alice", "bob (you)"]).await;
        assert_eq!(attr_of(&bob, "#typing", "aria-live").await, "polite");

        let composer = alice.find(Locator::Css("#composer")).await.unwrap();
        composer.send_keys("on my way").await.unwrap();
        eventually("bob to see alice typing", || async {
            let line = text_of(&bob, "#typing").await;
            if line == "alice is typing…" {
                Ok(())
            } else {
                Err(line)
            }
        })
        .await;
        assert_eq!(
            text_of(&alice, "#typing").await,
            "",
            "nobody is told about their own typing"
        );

        composer.send_keys(&Key::Enter.to_string()).await.unwrap();
        wait_texts(&bob, &["on my way"]).await;
        assert_eq!(
            text_of(&bob, "#typing").await,
            "",
            "her message ends her typing"
        );
    })
    .await;
}

#[tokio::test]
async fn web_addresses_become_safe_links_and_nothing_else_becomes_markup() {
    browser_test(|t| async move {
        let alice = t.user().await;
        let bob = t.user().await;
        enter_room(&alice, &t.base, "links", "alice").await;
        enter_room(&bob, &t.base, "links", "bob").await;
        wait_members(&bob, &["alice", "bob (you)"]).await;
        bob.execute(
            "window.alerted = false; window.alert = () => { window.alerted = true; };",
            vec![],
        )
        .await
        .unwrap();
        let text = "see https://example.com/x and javascript:alert(1)";
        say_and_wait_confirmed(&alice, text).await;
        let second = "<img src=x onerror=alert(2)> (http://example.org/a_(b)).";
        say_and_wait_confirmed(&alice, second).await;

        for page in [&alice, &bob] {
            wait_texts(page, &[text, second]).await;
            let links: Vec<(String, String, String, String)> = js(
                page,
                "return [...document.querySelectorAll('#messages .text a')].map(a =>
                    [a.getAttribute('href'), a.rel, a.target, a.textContent]);",
            )
            .await;
            let link = |href: &str| {
                (
                    href.to_string(),
                    "noopener noreferrer nofollow".to_string(),
                    "_blank".to_string(),
                    href.to_string(),
                )
            };
            assert_eq!(
                links,
                [
                    link("https://example.com/x"),
                    link("http://example.org/a_(b)")
                ]
            );
            let elements: u64 = js(
                page,
                "return document.querySelectorAll('#messages .text *').length;",
            )
            .await;
            assert_eq!(
                elements, 2,
                "the two links are the only markup in the texts"
            );
            assert!(
                page.get_alert_text().await.is_err(),
                "no alert dialog opened"
            );
        }
        let alerted: bool = js(&bob, "return window.alerted;").await;
        assert!(!alerted, "no script ran");
    })
    .await;
}

/// Presses Enter on the element `css`, as a keyboard user would.
async fn press(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
}

/// Waits for the reaction chips of message `seq` to be `expected`: (emoji, count, pressed).
async fn wait_chips(c: &Client, seq: i64, expected: &[(&str, i64, bool)]) {
    eventually(&format!("the reactions of message {seq}"), || async {
        let chips: Vec<(String, i64, bool)> = js(
            c,
            &format!(
                "return [...document.querySelectorAll(\"#messages li[data-seq='{seq}'] .reaction-chip\")].map(b =>
                    [b.querySelector('.reaction-emoji').textContent, Number(b.querySelector('.reaction-count').textContent),
                     b.getAttribute('aria-pressed') === 'true']);"
            ),
        )
        .await;
        let matches = chips.len() == expected.len()
            && chips
                .iter()
                .zip(expected)
                .all(|(seen, (emoji, count, pressed))| {
                    seen.0 == *emoji && seen.1 == *count && seen.2 == *pressed
                });
        if matches {
            Ok(())
        } else {
            Err(format!("{chips:?}"))
        }
    })
    .await;
}

/// Cuts `c` off the network and back, and returns the `since` of the join it resumed with.
async fn resume_cursor_after_a_drop(t: &TestCtx, c: &Client) -> Option<i64> {
    c.execute(
        "window.joinsSent = [];
         const send = WebSocket.prototype.send;
         WebSocket.prototype.send = function (data) {
           const frame = JSON.parse(data);
           if (frame.type === 'join') window.joinsSent.push(frame.since ?? null);
           return send.call(this, data);
         };",
        vec![],
    )
    .await
    .unwrap();
    t.set_offline(c, true).await;
    eventually("the page to say it is reconnecting", || async {
        let state = attr_of(c, "#status", "data-state").await;
        if state == "reconnecting" {
            Ok(())
        } else {
            Err(state)
        }
    })
    .await;
    t.set_offline(c, false).await;
    wait_connected(c).await;
    let joins: Vec<Option<i64>> = js(c, "return window.joinsSent;").await;
    assert_eq!(joins.len(), 1, "one resume: {joins:?}");
    joins[0]
}

/// Presses Enter on the Delete action of message `seq`, as a keyboard user would.
async fn press_delete(c: &Client, seq: i64) {
    c.find(Locator::Css(&format!(
        "#messages li[data-seq='{seq}'] .message-delete"
    )))
    .await
    .unwrap()
    .send_keys(&Key::Enter.to_string())
    .await
    .unwrap();
}

/// The confirmed messages in order, each with whether it offers Delete.
async fn delete_offered(c: &Client) -> Vec<(i64, bool)> {
    js(
        c,
        "return [...document.querySelectorAll('#messages li.message[data-seq]:not(.deleted)')]
            .map(li => [Number(li.dataset.seq), li.querySelector('.message-delete') !== null]);",
    )
    .await
}

async fn texts(c: &Client) -> Vec<String> {
    messages(c).await.into_iter().map(|m| m.text).collect()
}

/// Whether `text` is anywhere in the page's DOM, attributes included.
async fn dom_contains(c: &Client, text: &str) -> bool {
    js(
        c,
        &format!(
            "return document.documentElement.outerHTML.includes({});",
            json!(text)
        ),
    )
    .await
}

/// Waits for message `seq` to be a placeholder that still names its author and time.
async fn wait_placeholder(c: &Client, seq: i64, author: &str) {
    eventually(&format!("message {seq} to show as deleted"), || async {
        let seen: Option<(bool, String, String, bool)> = js(
            c,
            &format!(
                "const li = document.querySelector(\"#messages li[data-seq='{seq}']\");
                 return li && [li.classList.contains('deleted'), li.querySelector('.text').textContent,
                               li.querySelector('.author').textContent, li.querySelector('time') !== null];"
            ),
        )
        .await;
        match seen {
            Some((true, text, who, true)) if text == "Message deleted" && who == author => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// Whether each element matching `css` carries a "guest" mark, in document order.
async fn guest_marks(c: &Client, css: &str) -> Vec<bool> {
    js(
        c,
        &format!("return [...document.querySelectorAll('{css}')].map(el => el.querySelector('.guest-mark') !== null);"),
    )
    .await
}

/// The `.user-tag` of each element matching `css`, in document order.
async fn tags(c: &Client, css: &str) -> Vec<Option<String>> {
    js(
        c,
        &format!(
            "return [...document.querySelectorAll('{css}')].map(el => el.querySelector('.user-tag')?.textContent ?? null);"
        ),
    )
    .await
}

/// web/common.js's `idHash`: FNV-1a over UTF-16 units, then murmur3's finaliser.
fn id_hash(id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for unit in id.encode_utf16() {
        h ^= u32::from(unit);
        h = h.wrapping_mul(0x0100_0193);
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

fn id_tag(id: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let h = id_hash(id);
    let chars = [15, 10, 5, 0].map(|shift| char::from(ALPHABET[((h >> shift) & 31) as usize]));
    format!("#{}", chars.iter().collect::<String>())
}

fn id_colour(id: &str) -> String {
    format!("c{}", (id_hash(id) >> 20) % 12)
}

// ---- the harness: a server, a chromedriver, browsers ---------------------------------------

/// Runs one browser scenario with its own server and chromedriver, and closes every browser
/// afterwards even when the scenario fails (a panic is re-raised after the cleanup).
async fn browser_test<F, Fut>(scenario: F)
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
async fn browser_test_with<F, Fut>(adjust: impl FnOnce(&mut confab::Config), scenario: F)
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

fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        let notice = format!(
            "browser tests need {CHROMIUM} and {CHROMEDRIVER}: run scripts/install-browser.sh to install them"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{notice} (CI=true, so this is a failure)");
        }
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        );
        eprintln!("!!! SKIPPED: {notice}");
        eprintln!(
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
    }
    present
}

struct TestCtx {
    base: String,
    port: u16,
    server: tokio::sync::Mutex<TestServer>,
    /// Stopped servers, kept because they own the temporary data folder.
    stopped: Mutex<Vec<TestServer>>,
    driver: ChromeDriver,
    browsers: tokio::sync::Mutex<Vec<(Client, tempfile::TempDir)>>,
}

impl TestCtx {
    async fn start(adjust: impl FnOnce(&mut confab::Config)) -> Self {
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
    async fn user(&self) -> Client {
        self.browser(false).await
    }

    /// A new browser emulating a 390×844 phone.
    async fn phone_user(&self) -> Client {
        self.browser(true).await
    }

    async fn browser(&self, phone: bool) -> Client {
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

    async fn close_browsers(&self) {
        let browsers = std::mem::take(&mut *self.browsers.lock().await);
        for (client, _profile) in browsers {
            // A session whose last window a test closed is already gone; that is fine.
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
    }

    /// Cuts a browser off the network (or reconnects it) through the DevTools protocol:
    /// new connections fail and the page gets an `offline` event.
    async fn set_offline(&self, c: &Client, offline: bool) {
        let session = c.session_id().await.unwrap().expect("a session id");
        let http = reqwest::Client::new();
        for (cmd, params) in [
            ("Network.enable", json!({})),
            (
                "Network.emulateNetworkConditions",
                json!({"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}),
            ),
        ] {
            let answer: Value = http
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
        }
    }

    /// Stops the server; returns its data folder for `restart_server`.
    async fn stop_server(&self) -> PathBuf {
        let mut server = self.server.lock().await;
        server.stop().await;
        server.data_dir().to_path_buf()
    }

    /// Starts the server again on the same port and data folder.
    async fn restart_server(&self, data_dir: PathBuf) {
        let next = TestServer::start_on(&data_dir, self.port).await;
        let old = std::mem::replace(&mut *self.server.lock().await, next);
        self.stopped.lock().unwrap().push(old);
    }
}

/// A chromedriver on a free port, killed when dropped.
struct ChromeDriver {
    port: u16,
    _child: tokio::process::Child,
}

impl ChromeDriver {
    async fn start() -> Self {
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

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

// ---- what a user does -----------------------------------------------------------------------

async fn sign_in_at_lobby(c: &Client, base: &str, name: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    let input = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#name"))
        .await
        .unwrap();
    wait_displayed(c, "#name").await;
    input.send_keys(name).await.unwrap();
    click(c, "#name-submit").await;
    eventually("the lobby to greet the user", || async {
        let shown = text_of(c, "#me-name").await;
        if shown == name && is_displayed(c, "#lobby").await {
            Ok(())
        } else {
            Err(shown)
        }
    })
    .await;
}

/// Creates an account with the lobby's form (the lobby is showing its sign-in card).
async fn sign_up_at_lobby(c: &Client, username: &str, password: &str, name: Option<&str>) {
    click(c, "#show-signup").await;
    wait_displayed(c, "#signup-username").await;
    fill(c, "#signup-username", username).await;
    fill(c, "#signup-password", password).await;
    if let Some(name) = name {
        fill(c, "#signup-name", name).await;
    }
    click(c, "#signup-submit").await;
    let shown_name = name.unwrap_or(username);
    wait_signed_in_as(
        c,
        shown_name,
        Some(&format!("@{}", username.to_lowercase())),
    )
    .await;
}

/// Waits for the lobby to show the user: the name, and `@username` for an account or the
/// guest mark for a guest (`None`).
async fn wait_signed_in_as(c: &Client, name: &str, username: Option<&str>) {
    eventually("the lobby to show who is signed in", || async {
        let shown_name = text_of(c, "#me-name").await;
        let shown_username = if is_displayed(c, "#me-username").await {
            Some(text_of(c, "#me-username").await)
        } else {
            None
        };
        let guest = is_displayed(c, "#me-guest").await;
        let lobby = is_displayed(c, "#lobby").await && !is_displayed(c, "#signin").await;
        if shown_name == name
            && shown_username.as_deref() == username
            && guest == username.is_none()
            && lobby
        {
            Ok(())
        } else {
            Err(format!(
                "{shown_name:?} {shown_username:?} guest={guest} lobby={lobby}"
            ))
        }
    })
    .await;
}

/// Types `text` into the input `css` after clearing it.
async fn fill(c: &Client, css: &str, text: &str) {
    let input = c.find(Locator::Css(css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

async fn open_room_from_lobby(c: &Client, room: &str) {
    let input = c.find(Locator::Css("#room-name")).await.unwrap();
    input.send_keys(room).await.unwrap();
    click(c, "#room-submit").await;
    wait_connected(c).await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        format!("/chat/{room}/")
    );
}

/// Opens a room by its address; signs in with the inline form first when there is no session.
async fn enter_room(c: &Client, base: &str, room: &str, name: &str) {
    c.goto(&format!("{base}/chat/{room}/")).await.unwrap();
    eventually("the room or the sign-in form", || async {
        let state = attr_of(c, "#status", "data-state").await;
        if state == "connected" {
            return Ok(());
        }
        if is_displayed(c, "#signin").await {
            let input = c
                .find(Locator::Css("#name"))
                .await
                .map_err(|e| e.to_string())?;
            input.send_keys(name).await.map_err(|e| e.to_string())?;
            click(c, "#name-submit").await;
            wait_connected(c).await;
            return Ok(());
        }
        Err(state)
    })
    .await;
}

/// Types `text` into the composer and presses Enter; a newline in `text` is typed as
/// Shift+Enter (the NULL key releases the modifier).
async fn type_message(c: &Client, text: &str) {
    let composer = c.find(Locator::Css("#composer")).await.unwrap();
    let newline = format!("{}{}{}", Key::Shift, Key::Enter, Key::Null);
    let keys = text.replace('\n', &newline);
    composer
        .send_keys(&format!("{keys}{}", Key::Enter))
        .await
        .unwrap();
}

async fn say_and_wait_confirmed(c: &Client, text: &str) {
    type_message(c, text).await;
    eventually("the message to be confirmed", || async {
        let m = messages(c).await;
        if m.iter()
            .any(|m| m.text == text && !m.pending && m.seq.is_some())
        {
            Ok(())
        } else {
            Err(format!("{m:?}"))
        }
    })
    .await;
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn save_screenshot(c: &Client, file: &str) {
    // Written when missing or when asked (`CONFAB_SCREENSHOTS=1`), so an ordinary test run does
    // not rewrite the committed pictures (times and avatar colours differ on every run).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    let path = dir.join(file);
    let asked = std::env::var("CONFAB_SCREENSHOTS").is_ok_and(|v| v == "1");
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    if asked || !path.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

// ---- what a user sees -----------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
struct Shown {
    seq: Option<i64>,
    author: String,
    text: String,
    pending: bool,
    own: bool,
}

async fn messages(c: &Client) -> Vec<Shown> {
    js(
        c,
        "return [...document.querySelectorAll('#messages li.message')].map(li => ({
            seq: li.dataset.seq ? Number(li.dataset.seq) : null,
            author: li.querySelector('.author').textContent,
            text: li.querySelector('.text').textContent,
            pending: li.classList.contains('pending'),
            own: li.classList.contains('own'),
        }));",
    )
    .await
}

async fn seqs(c: &Client) -> Vec<i64> {
    js(c, "return [...document.querySelectorAll('#messages li.message[data-seq]')].map(li => Number(li.dataset.seq));").await
}

async fn members(c: &Client) -> Vec<String> {
    js(
        c,
        "return [...document.querySelectorAll('#member-list li')].map(li =>
            li.querySelector('.member-name').textContent + (li.querySelector('.you') ? ' (you)' : ''));",
    )
    .await
}

async fn wait_members(c: &Client, expected: &[&str]) {
    eventually("the members panel", || async {
        let m = members(c).await;
        if m == expected {
            Ok(())
        } else {
            Err(format!("{m:?}"))
        }
    })
    .await;
}

async fn wait_texts(c: &Client, expected: &[&str]) {
    eventually("the messages", || async {
        let m = messages(c).await;
        let texts: Vec<&str> = m.iter().map(|m| m.text.as_str()).collect();
        if texts == expected {
            Ok(())
        } else {
            Err(format!("{texts:?}"))
        }
    })
    .await;
}

async fn wait_texts_contain(c: &Client, text: &str) {
    eventually("a message", || async {
        let m = messages(c).await;
        if m.iter().any(|m| m.text == text && !m.pending) {
            Ok(())
        } else {
            Err(format!("{m:?}"))
        }
    })
    .await;
}

async fn wait_seq_range(c: &Client, first: i64, last: i64) {
    eventually("the newest messages", || async {
        let s = seqs(c).await;
        if s == (first..=last).collect::<Vec<_>>() {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
}

async fn wait_connected(c: &Client) {
    eventually("the room to be connected", || async {
        let state = attr_of(c, "#status", "data-state").await;
        let text = text_of(c, "#status").await;
        if state == "connected" && text == "Connected" {
            Ok(())
        } else {
            Err(format!("{state} / {text}"))
        }
    })
    .await;
}

async fn wait_lobby_live(c: &Client) {
    eventually("the lobby to be live", || async {
        let state = attr_of(c, "#status", "data-state").await;
        if state == "connected" {
            Ok(())
        } else {
            Err(state)
        }
    })
    .await;
}

async fn wait_room_count(c: &Client, room: &str, online: u64) {
    eventually(&format!("the lobby to show {room} with {online} online"), || async {
        let shown: Option<String> = js(
            c,
            &format!("const li = document.querySelector('#rooms li[data-room=\"{room}\"]'); return li ? li.querySelector('.count').textContent : null;"),
        )
        .await;
        if shown.as_deref() == Some(format!("{online} online").as_str()) { Ok(()) } else { Err(format!("{shown:?}")) }
    })
    .await;
}

async fn wait_displayed(c: &Client, css: &str) {
    eventually(&format!("{css} to be shown"), || async {
        if is_displayed(c, css).await {
            Ok(())
        } else {
            Err("not shown".into())
        }
    })
    .await;
}

async fn wait_visible_text(c: &Client, css: &str) -> String {
    eventually(&format!("a message in {css}"), || async {
        let text = text_of(c, css).await;
        if is_displayed(c, css).await && !text.trim().is_empty() {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await
}

async fn is_displayed(c: &Client, css: &str) -> bool {
    js(
        c,
        &format!(
            "const e = document.querySelector({}); if (!e) return false; const r = e.getBoundingClientRect();
             return e.checkVisibility({{visibilityProperty: true}}) && r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= window.innerWidth + 1;",
            json!(css)
        ),
    )
    .await
}

async fn text_of(c: &Client, css: &str) -> String {
    js(
        c,
        &format!(
            "const e = document.querySelector({}); return e ? e.textContent : '';",
            json!(css)
        ),
    )
    .await
}

async fn value_of(c: &Client, css: &str) -> String {
    js(
        c,
        &format!("return document.querySelector({}).value;", json!(css)),
    )
    .await
}

async fn attr_of(c: &Client, css: &str, name: &str) -> String {
    js(
        c,
        &format!(
            "const e = document.querySelector({}); return e ? (e.getAttribute({}) ?? '') : '';",
            json!(css),
            json!(name)
        ),
    )
    .await
}

async fn js<T: DeserializeOwned>(c: &Client, script: &str) -> T {
    let value = c
        .execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"));
    serde_json::from_value(value)
        .unwrap_or_else(|e| panic!("unexpected script result: {e}\n{script}"))
}

/// The id of the signed-in user, from the session API.
async fn session_user_id(c: &Client) -> String {
    let script = "const done = arguments[arguments.length - 1];
        fetch('/api/session').then(r => r.json()).then(b => done(b.user.id), e => done(String(e)));";
    let value = c.execute_async(script, vec![]).await.expect("script runs");
    value.as_str().expect("an id").to_owned()
}

/// The signed-in user as `GET /api/session` tells it, or `None` on 401.
async fn session_user(c: &Client) -> Option<Value> {
    let script = "const done = arguments[arguments.length - 1];
        fetch('/api/session', {cache: 'no-store'}).then(r => r.status === 401 ? null : r.json().then(b => b.user))
            .then(done, e => done({error: String(e)}));";
    let value = c.execute_async(script, vec![]).await.expect("script runs");
    assert!(value.get("error").is_none(), "{value}");
    (!value.is_null()).then_some(value)
}

/// Polls `probe` until it succeeds or `WAIT` passes; the failure names what was awaited and
/// the last thing seen.
async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    eventually_within(what, WAIT, probe).await
}

/// [`eventually`] with a wait of its own, for what takes longer by design (paced sends).
async fn eventually_within<T, F, Fut>(what: &str, wait: Duration, mut probe: F) -> T
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
async fn members_stay(client: &Client, expected: &[&str], what: &str, period: Duration) {
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

async fn consistently<F, Fut>(what: &str, period: Duration, mut probe: F)
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

// ---- a protocol client for seeding and for "someone else" -----------------------------------

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A non-browser guest (`/ws?name=`), used to seed rooms and to talk while browsers watch.
struct Guest {
    socket: Socket,
    /// The user id the server gave this guest.
    id: String,
    counter: u64,
    seen: Vec<Value>,
}

impl Guest {
    async fn connect(port: u16, name: &str) -> Self {
        let url = format!("ws://127.0.0.1:{port}/ws?name={}", percent_encode(name));
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the guest connects");
        let mut guest = Guest {
            socket,
            id: String::new(),
            counter: 0,
            seen: Vec::new(),
        };
        let hello = guest.next_of("hello").await;
        guest.id = hello["user"]["id"].as_str().expect("a user id").to_owned();
        guest
    }

    async fn join(&mut self, room: &str) {
        self.frame(json!({"type": "join", "room": room})).await;
        self.next_of("joined").await;
    }

    /// Sends a message without waiting for it (several can be in flight).
    async fn send(&mut self, room: &str, text: &str) {
        self.counter += 1;
        let client_id = format!("guest-{}", self.counter);
        self.frame(json!({"type": "send", "room": room, "text": text, "client_id": client_id}))
            .await;
    }

    async fn wait_for_seq(&mut self, seq: i64) {
        self.wait_until(|f| f["type"] == "message" && f["seq"] == json!(seq))
            .await;
    }

    async fn wait_for_text(&mut self, text: &str) {
        self.wait_until(|f| f["type"] == "message" && f["text"] == json!(text))
            .await;
    }

    async fn frame(&mut self, frame: Value) {
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .expect("the guest sends");
    }

    async fn next_of(&mut self, kind: &str) -> Value {
        self.wait_until(|f| f["type"] == kind).await
    }

    async fn wait_until(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&matches) {
            return self.seen.remove(i);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("the guest waited too long for a frame")
                .expect("the connection is open")
                .expect("a frame");
            if let Message::Text(text) = next {
                let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
                if frame["type"] == "error" {
                    panic!("the guest got an error: {frame}");
                }
                if matches(&frame) {
                    return frame;
                }
                if frame["type"] != "message" && frame["type"] != "presence" {
                    self.seen.push(frame);
                }
            }
        }
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
