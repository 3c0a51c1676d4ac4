//! Deleting, editing, replying, reacting, typing and links in a browser.

use crate::*;

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

/// The page's `client_id`s are UUIDv7s: they start with the time, so each user's ids reach the
/// server in increasing order and its unique index of them grows at one end instead of
/// rewriting a random page of a large room's index for every message.
#[tokio::test]
async fn the_pages_client_ids_are_uuid_v7_and_grow_with_time() {
    browser_test(|t| async move {
        let alice = t.user().await;
        enter_room(&alice, &t.base, "ids", "alice").await;
        say_and_wait_confirmed(&alice, "sent with one of them").await;
        let script = "const done = arguments[arguments.length - 1];
            import('/assets/common.js').then((m) => {
                const first = m.newClientId();
                // The next id made in a later millisecond (the first 13 characters are the time).
                let second = first;
                while (second.slice(0, 13) === first.slice(0, 13)) second = m.newClientId();
                done({first, second, now: Date.now()});
            }, (e) => done({error: String(e)}));";
        let ids = alice
            .execute_async(script, vec![])
            .await
            .expect("the page makes ids");
        assert!(ids.get("error").is_none(), "{ids}");
        let (first, second) = (
            ids["first"].as_str().unwrap_or_default(),
            ids["second"].as_str().unwrap_or_default(),
        );
        let v7 = |id: &str| {
            let hex: String = id.split('-').collect();
            id.len() == 36
                && id.split('-').map(str::len).eq([8, 4, 4, 4, 12])
                && hex
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                && hex.as_bytes()[12] == b'7'
                && matches!(hex.as_bytes()[16], b'8' | b'9' | b'a' | b'b')
        };
        assert!(v7(first) && v7(second), "UUIDv7s: {ids}");
        assert!(
            first < second,
            "a later id sorts after an earlier one: {ids}"
        );
        let millis = u64::from_str_radix(&first.replace('-', "")[..12], 16).unwrap_or(0);
        let now = ids["now"].as_u64().unwrap_or(0);
        assert!(
            now >= millis && now - millis < 60_000,
            "the id starts with the time it was made: {ids}"
        );
    })
    .await;
}
