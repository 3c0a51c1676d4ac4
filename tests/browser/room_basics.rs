//! The seed's promises in a browser: talking, presence, the lobby, history, restarts, names.

use crate::*;

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
        // A snapshot (the lobby asks for one now and then, and on every reconnect) lists an
        // empty room only if it has messages; one message keeps the lounge listed at "0 online"
        // below, whichever way the count reaches the page.
        say_and_wait_confirmed(&alice, "anyone here?").await;
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
