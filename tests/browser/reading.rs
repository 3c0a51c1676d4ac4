//! Reading in a browser: the "New messages" divider, read markers, unread and mention badges,
//! the page title, mention highlights, the room's search box, and mention notifications.

use crate::*;

/// A room's counts in the lobby: (data-unread, data-mentions, the screen-reader words, the
/// badges' texts); `None` when the room is not listed.
async fn lobby_counts(c: &Client, room: &str) -> Option<(String, String, String, Vec<String>)> {
    let value: Value = js(
        c,
        &format!(
            "const li = document.querySelector('#rooms li[data-room=\"{room}\"]');
             if (!li) return null;
             return [li.dataset.unread ?? '', li.dataset.mentions ?? '',
                     li.querySelector('.counts-label').textContent,
                     [...li.querySelectorAll('.badge')].map(b => b.textContent)];"
        ),
    )
    .await;
    serde_json::from_value(value).unwrap()
}

/// Waits for the lobby to show `unread` and `mentions` for `room`, badges and words alike.
async fn wait_lobby_counts(c: &Client, room: &str, unread: u64, mentions: u64) {
    let mut words = Vec::new();
    let mut badges = Vec::new();
    if unread > 0 {
        words.push(format!("{unread} unread"));
        badges.push(unread.to_string());
    }
    if mentions > 0 {
        let noun = if mentions == 1 { "mention" } else { "mentions" };
        words.push(format!("{mentions} {noun}"));
        badges.push(format!("@{mentions}"));
    }
    let label = if words.is_empty() {
        String::new()
    } else {
        format!(", {}", words.join(", "))
    };
    let expected = Some((unread.to_string(), mentions.to_string(), label, badges));
    eventually(
        &format!("the lobby to show {room} with {unread} unread, {mentions} mentions"),
        || async {
            let shown = lobby_counts(c, room).await;
            if shown == expected {
                Ok(())
            } else {
                Err(format!("{shown:?}"))
            }
        },
    )
    .await;
}

async fn title(c: &Client) -> String {
    js(c, "return document.title").await
}

async fn wait_title(c: &Client, expected: &str) {
    eventually(&format!("the title {expected:?}"), || async {
        let shown = title(c).await;
        if shown == expected {
            Ok(())
        } else {
            Err(shown)
        }
    })
    .await;
}

/// The "New messages" dividers shown, and the seq of the message right below the first one
/// (day dividers skipped).
async fn unread_divider(c: &Client) -> (u64, String, Option<i64>) {
    let value: Value = js(
        c,
        "const all = document.querySelectorAll('#messages li.unread-divider');
         const d = all[0];
         if (!d) return [0, '', null];
         let n = d.nextElementSibling;
         while (n && n.matches('li.day')) n = n.nextElementSibling;
         return [all.length, d.textContent, n && n.matches('li.message') ? Number(n.dataset.seq) : null];",
    )
    .await;
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn new_messages_get_a_divider_on_entry_and_reading_them_clears_the_count_in_another_window() {
    browser_test(|t| async move {
        let alice = t.user().await;
        sign_in_at_lobby(&alice, &t.base, "alice").await;
        let mut bob = Guest::connect(t.port, "bob").await;
        bob.join("notes").await;
        bob.send("notes", "before 1").await;
        bob.send("notes", "before 2").await;
        bob.wait_for_seq(2).await;

        // A first visit: nothing old is unread, so no divider.
        open_room_from_lobby(&alice, "notes").await;
        wait_texts(&alice, &["before 1", "before 2"]).await;
        assert_eq!(
            unread_divider(&alice).await.0,
            0,
            "no divider on a first visit"
        );
        wait_title(&alice, "#notes · confab").await;

        // Alice goes back to the lobby, and watches it in a second window too.
        alice.goto(&format!("{}/", t.base)).await.unwrap();
        wait_lobby_live(&alice).await;
        let first_window = alice.window().await.unwrap();
        let second_window = alice.new_window(false).await.unwrap().handle;
        alice.switch_to_window(second_window.clone()).await.unwrap();
        alice.goto(&format!("{}/", t.base)).await.unwrap();
        wait_lobby_live(&alice).await;
        wait_lobby_counts(&alice, "notes", 0, 0).await;

        // Bob says three things and goes; both lobbies count them.
        for text in ["new 1", "new 2", "new 3"] {
            bob.send("notes", text).await;
        }
        bob.wait_for_seq(5).await;
        bob.frame(json!({"type": "leave", "room": "notes"})).await;
        bob.next_of("left").await;
        wait_lobby_counts(&alice, "notes", 3, 0).await;
        wait_title(&alice, "(3) confab").await;
        alice.switch_to_window(first_window.clone()).await.unwrap();
        wait_lobby_counts(&alice, "notes", 3, 0).await;

        // Back in the room: the divider sits right above the first new message, once.
        click(&alice, "#rooms li[data-room='notes'] a").await;
        wait_connected(&alice).await;
        wait_texts(&alice, &["before 1", "before 2", "new 1", "new 2", "new 3"]).await;
        assert_eq!(
            unread_divider(&alice).await,
            (1, "New messages".to_string(), Some(3))
        );
        // They are on screen, so they are read: the title has no count, and the other window's
        // lobby hears the read marker and clears its badge.
        wait_title(&alice, "#notes · confab").await;
        alice.switch_to_window(second_window).await.unwrap();
        wait_lobby_counts(&alice, "notes", 0, 0).await;
        wait_title(&alice, "confab").await;

        // The divider stays where it was while the page is open; a reload has nothing unread.
        alice.switch_to_window(first_window).await.unwrap();
        say_and_wait_confirmed(&alice, "thanks bob").await;
        assert_eq!(unread_divider(&alice).await.0, 1);
        alice.refresh().await.unwrap();
        wait_connected(&alice).await;
        wait_texts(
            &alice,
            &[
                "before 1",
                "before 2",
                "new 1",
                "new 2",
                "new 3",
                "thanks bob",
            ],
        )
        .await;
        assert_eq!(unread_divider(&alice).await.0, 0, "nothing is unread now");
    })
    .await;
}

#[tokio::test]
async fn the_lobby_badges_and_the_titles_count_unread_messages_and_mentions_until_they_are_read() {
    browser_test(|t| async move {
        let alice = t.user().await;
        sign_up(&alice, &t.base, "alice", "Ally").await;
        let mut bob = Guest::connect(t.port, "bob").await;
        bob.join("plans").await;
        for i in 1..=40 {
            bob.send("plans", &format!("filler {i}")).await;
        }
        bob.wait_for_seq(40).await;
        open_room_from_lobby(&alice, "plans").await;
        wait_texts_contain(&alice, "filler 40").await;
        alice.goto(&format!("{}/", t.base)).await.unwrap();
        wait_lobby_live(&alice).await;
        wait_lobby_counts(&alice, "plans", 0, 0).await;

        // Four from Bob, two of them mentioning Alice: by username, and by display name in
        // capitals. "@alicette" is someone else.
        for text in [
            "hello all",
            "@alice can you look?",
            "@ALLY again",
            "@alicette is not you",
        ] {
            bob.send("plans", text).await;
        }
        bob.wait_for_seq(44).await;
        bob.frame(json!({"type": "leave", "room": "plans"})).await;
        bob.next_of("left").await;
        wait_lobby_counts(&alice, "plans", 4, 2).await;
        wait_title(&alice, "(4, @2) confab").await;
        assert!(is_displayed(&alice, "#rooms li[data-room='plans'] .mention-badge").await);

        // In the room the mentions are marked; once seen, the title has no count.
        click(&alice, "#rooms li[data-room='plans'] a").await;
        wait_connected(&alice).await;
        wait_texts_contain(&alice, "@alicette is not you").await;
        let marks: Vec<String> = js(
            &alice,
            "return [...document.querySelectorAll('#messages .text mark.mention')].map(m => m.textContent)",
        )
        .await;
        assert_eq!(marks, ["@alice", "@ALLY"]);
        wait_title(&alice, "#plans · confab").await;

        // Scrolled up, a new message is not seen: the title counts it until Alice jumps down.
        alice
            .execute(
                "document.getElementById('scroller').scrollTop = 0",
                vec![],
            )
            .await
            .unwrap();
        bob.join("plans").await;
        bob.send("plans", "@ally are you there?").await;
        bob.wait_for_seq(45).await;
        wait_displayed(&alice, "#jump-latest").await;
        wait_title(&alice, "(1, @1) #plans · confab").await;
        click(&alice, "#jump-latest").await;
        wait_title(&alice, "#plans · confab").await;

        // Leaving at once keeps what was just read: the `read` waiting for its throttle goes
        // out before the page closes its socket.
        alice.goto(&format!("{}/", t.base)).await.unwrap();
        wait_lobby_live(&alice).await;
        wait_lobby_counts(&alice, "plans", 0, 0).await;
        wait_title(&alice, "confab").await;
    })
    .await;
}

#[tokio::test]
async fn a_mention_of_the_viewer_is_highlighted_others_present_more_quietly_and_text_stays_text() {
    browser_test(|t| async move {
        let alice = t.user().await;
        sign_up(&alice, &t.base, "alice", "Alice").await;
        open_room_from_lobby(&alice, "hi").await;
        let carol = t.user().await;
        enter_room(&carol, &t.base, "hi", "carol").await;
        let mut bob = Guest::connect(t.port, "bob").await;
        bob.join("hi").await;
        bob.send("hi", "@alice <b>x</b>").await;
        bob.send("hi", "mail alice@example.com or @alicex").await;
        bob.wait_for_seq(2).await;

        for page in [&alice, &carol] {
            wait_texts(
                page,
                &["@alice <b>x</b>", "mail alice@example.com or @alicex"],
            )
            .await;
            let bold: u64 = js(
                page,
                "return document.querySelectorAll('#messages .text b').length",
            )
            .await;
            assert_eq!(bold, 0, "no markup from the text");
        }
        let marks: Vec<(i64, String)> = js(
            &alice,
            "return [...document.querySelectorAll('#messages .text mark.mention')]
                .map(m => [Number(m.closest('li').dataset.seq), m.textContent])",
        )
        .await;
        assert_eq!(marks, [(1, "@alice".to_string())]);
        // Carol sees Alice, who is present, mentioned: quietly, not as her own mention.
        let others: Vec<(i64, String, String)> = js(
            &carol,
            "return [...document.querySelectorAll('#messages .text mark')]
                .map(m => [Number(m.closest('li').dataset.seq), m.className, m.textContent])",
        )
        .await;
        assert_eq!(
            others,
            [(1, "mention-other".to_string(), "@alice".to_string())],
            "a mention of Alice is shown to Carol as someone else's"
        );
    })
    .await;
}

#[tokio::test]
async fn the_search_box_lists_matches_newest_first_pages_with_more_results_and_skips_deleted_ones()
{
    browser_test(|t| async move {
        let mut bob = Guest::connect(t.port, "bob").await;
        bob.join("launch").await;
        bob.send("launch", "launch plan doomed").await;
        bob.wait_for_seq(1).await;
        for i in 1..=24 {
            bob.send("launch", &format!("launch plan {i}")).await;
        }
        for i in 1..=60 {
            bob.send("launch", &format!("chatter {i}")).await;
        }
        bob.send("launch", "launch plan 25 latest").await;
        bob.wait_for_seq(86).await;
        bob.frame(json!({"type": "delete", "room": "launch", "seq": 1, "client_id": "d-1"}))
            .await;
        bob.next_of("deleted").await;

        let alice = t.user().await;
        enter_room(&alice, &t.base, "launch", "alice").await;
        wait_texts_contain(&alice, "launch plan 25 latest").await;

        click(&alice, "#search-open").await;
        wait_displayed(&alice, "#search-input").await;
        let focused: String = js(&alice, "return document.activeElement.id").await;
        assert_eq!(focused, "search-input");
        let label: String = js(&alice, "return document.querySelector('label[for=search-input]').textContent").await;
        assert!(!label.is_empty());
        alice
            .active_element()
            .await
            .unwrap()
            .send_keys(&format!("Launch PLAN{}", Key::Enter))
            .await
            .unwrap();

        let results = |c: &Client| {
            let c = c.clone();
            async move {
                let value: Value = js(
                    &c,
                    "return [...document.querySelectorAll('#search-results li')].map(li =>
                        [Number(li.dataset.seq), li.querySelector('.search-text').textContent,
                         li.querySelector('.author').textContent])",
                )
                .await;
                serde_json::from_value::<Vec<(i64, String, String)>>(value).unwrap()
            }
        };
        eventually("the first page of results", || async {
            let shown = results(&alice).await;
            let status = text_of(&alice, "#search-status").await;
            if shown.len() == 20 && status == "20 results, more available." {
                Ok(())
            } else {
                Err(format!("{} {status}", shown.len()))
            }
        })
        .await;
        let first = results(&alice).await;
        assert_eq!(first[0].1, "launch plan 25 latest");
        assert_eq!(first[0].2, "bob");
        assert_eq!(first[1].1, "launch plan 24");
        assert!(first.windows(2).all(|w| w[0].0 > w[1].0), "newest first");
        assert_eq!(attr_of(&alice, "#search-status", "role").await, "status");

        click(&alice, "#search-more").await;
        eventually("every result", || async {
            let shown = results(&alice).await;
            let status = text_of(&alice, "#search-status").await;
            if shown.len() == 25 && status == "25 results." && !is_displayed(&alice, "#search-more").await {
                Ok(())
            } else {
                Err(format!("{} {status}", shown.len()))
            }
        })
        .await;
        let all = results(&alice).await;
        assert!(all.windows(2).all(|w| w[0].0 > w[1].0), "newest first");
        assert_eq!(all[24].1, "launch plan 1");
        assert!(all.iter().all(|r| !r.1.contains("doomed")), "a deleted message never matches");

        // A loaded result takes the reader to the message; an older one says so.
        click(&alice, "#search-results li:first-child .search-result").await;
        eventually("the message to have the focus", || async {
            let seq: Option<i64> = js(
                &alice,
                "const li = document.activeElement.closest('li.message'); return li ? Number(li.dataset.seq) : null",
            )
            .await;
            if seq == Some(86) { Ok(()) } else { Err(format!("{seq:?}")) }
        })
        .await;
        click(&alice, "#search-results li:last-child .search-result").await;
        eventually("the result to say it is older", || async {
            let status = text_of(&alice, "#search-status").await;
            if status.contains("older than the ones loaded") { Ok(()) } else { Err(status) }
        })
        .await;

        // Escape closes the search and gives the focus back to its button.
        alice
            .find(Locator::Css("#search-input"))
            .await
            .unwrap()
            .send_keys(&Key::Escape.to_string())
            .await
            .unwrap();
        eventually("the search to close", || async {
            let focused: String = js(&alice, "return document.activeElement.id").await;
            if !is_displayed(&alice, "#search").await && focused == "search-open" {
                Ok(())
            } else {
                Err(focused)
            }
        })
        .await;
        assert_eq!(attr_of(&alice, "#search-open", "aria-expanded").await, "false");
    })
    .await;
}

#[tokio::test]
async fn notifications_are_asked_for_only_from_the_control_and_it_shows_what_the_browser_allows() {
    browser_test(|t| async move {
        let alice = t.user().await;
        enter_room(&alice, &t.base, "pings", "alice").await;
        wait_displayed(&alice, "#notify-toggle").await;
        assert_eq!(
            attr_of(&alice, "#notify-toggle", "aria-label").await,
            "Notify me of mentions"
        );
        assert_eq!(
            attr_of(&alice, "#notify-toggle", "aria-pressed").await,
            "false"
        );
        // Loading the page asked for nothing.
        consistently(
            "no permission asked on load",
            Duration::from_millis(500),
            || async {
                let permission: String = js(&alice, "return Notification.permission").await;
                if permission == "default" {
                    Ok(())
                } else {
                    Err(permission)
                }
            },
        )
        .await;

        // The click asks: headless Chromium answers every permission prompt with "no", so the
        // permission turns from "default" to "denied" only now, and the control says so.
        click(&alice, "#notify-toggle").await;
        eventually(
            "the prompt to be answered and the control to say so",
            || async {
                let permission: String = js(&alice, "return Notification.permission").await;
                let pressed = attr_of(&alice, "#notify-toggle", "aria-pressed").await;
                let state = text_of(&alice, "#notify-state").await;
                if permission == "denied" && pressed == "false" && state.contains("blocked") {
                    Ok(())
                } else {
                    Err(format!("{permission} {pressed} {state}"))
                }
            },
        )
        .await;

        // The site is allowed (as if the user said yes); the control turns on when clicked.
        let origin = t.base.trim_end_matches('/').to_string();
        t.cdp(
            &alice,
            "Browser.grantPermissions",
            json!({"origin": origin, "permissions": ["notifications"]}),
        )
        .await;
        assert_eq!(
            attr_of(&alice, "#notify-toggle", "aria-pressed").await,
            "false",
            "not on before the click"
        );
        click(&alice, "#notify-toggle").await;
        eventually("the control to be on", || async {
            let pressed = attr_of(&alice, "#notify-toggle", "aria-pressed").await;
            let state = text_of(&alice, "#notify-state").await;
            if pressed == "true" && state.starts_with("On") {
                Ok(())
            } else {
                Err(format!("{pressed} {state}"))
            }
        })
        .await;
        // A reload remembers the choice; clicking again turns it off.
        alice.refresh().await.unwrap();
        wait_connected(&alice).await;
        eventually("the control to be on after a reload", || async {
            let pressed = attr_of(&alice, "#notify-toggle", "aria-pressed").await;
            if pressed == "true" {
                Ok(())
            } else {
                Err(pressed)
            }
        })
        .await;
        click(&alice, "#notify-toggle").await;
        eventually("the control to be off", || async {
            let pressed = attr_of(&alice, "#notify-toggle", "aria-pressed").await;
            if pressed == "false" {
                Ok(())
            } else {
                Err(pressed)
            }
        })
        .await;
    })
    .await;
}
