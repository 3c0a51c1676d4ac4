//! Accessibility: axe-core's WCAG 2.1 A and AA rules on the lobby, on a busy room and on the
//! admin view, at desktop and phone width, in light and dark; and what a screen-reader or keyboard user relies on beyond
//! what axe can see: what the live region says, the phone members panel as a modal, and own
//! messages confirmed in place.
//!
//! axe-core is vendored in `tests/browser/vendor/` (see its README): WebDriver's `execute` runs
//! it in the page, outside the page's Content-Security-Policy, which only governs the page's own
//! scripts.

use crate::*;

/// axe-core 4.14.1, minified (MPL-2.0; `tests/browser/vendor/`).
const AXE: &str = include_str!("vendor/axe.min.js");

/// One rule that failed, as axe reports it.
#[derive(Debug, Deserialize)]
struct Violation {
    id: String,
    impact: Option<String>,
    help: String,
    nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
struct Node {
    target: Value,
    #[serde(rename = "failureSummary")]
    failure_summary: Option<String>,
}

/// Runs axe-core's WCAG 2.0/2.1 A and AA rules on the page `c` shows and fails the test with each
/// violation: its rule, impact, and the first elements it was found on, with why.
async fn audit(c: &Client, what: &str) {
    let loaded: bool = js(c, "return typeof window.axe === 'object';").await;
    if !loaded {
        c.execute(AXE, vec![])
            .await
            .expect("axe-core loads in the page");
    }
    let script = "const done = arguments[arguments.length - 1];
        axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
                           resultTypes: ['violations']})
           .then(r => done({violations: r.violations, passes: r.passes.length}), e => done({error: String(e)}));";
    let result = c.execute_async(script, vec![]).await.expect("axe runs");
    assert!(
        result.get("error").is_none(),
        "axe failed on {what}: {result}"
    );
    let passes = result["passes"].as_u64().unwrap_or(0);
    assert!(passes > 10, "axe checked {what} ({passes} rules passed)");
    let violations: Vec<Violation> =
        serde_json::from_value(result["violations"].clone()).expect("axe's violations");
    if violations.is_empty() {
        return;
    }
    let mut report = format!("{} axe violation(s) on {what}:\n", violations.len());
    for v in &violations {
        report += &format!(
            "- {} ({}): {} — {} element(s)\n",
            v.id,
            v.impact.as_deref().unwrap_or("?"),
            v.help,
            v.nodes.len()
        );
        for node in v.nodes.iter().take(3) {
            report += &format!(
                "    {} {}\n",
                node.target,
                node.failure_summary
                    .as_deref()
                    .unwrap_or("")
                    .replace('\n', " ")
            );
        }
    }
    panic!("{report}");
}

/// Switches the page's `prefers-color-scheme` through the DevTools protocol.
async fn set_color_scheme(t: &TestCtx, c: &Client, scheme: &str) {
    let features = json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]});
    t.cdp(c, "Emulation.setEmulatedMedia", features).await;
    let applied: bool = js(
        c,
        &format!("return matchMedia('(prefers-color-scheme: {scheme})').matches;"),
    )
    .await;
    assert!(applied, "the page sees prefers-color-scheme: {scheme}");
    // Buttons fade between colours; axe must see where they settle, not a blend on the way.
    eventually("the colour transitions to settle", || async {
        let running: u64 = js(
            c,
            "return document.getAnimations().filter(a => a instanceof CSSTransition).length;",
        )
        .await;
        if running == 0 {
            Ok(())
        } else {
            Err(format!("{running} running"))
        }
    })
    .await;
}

/// Audits the page in light and in dark.
async fn audit_both_schemes(t: &TestCtx, c: &Client, what: &str) {
    set_color_scheme(t, c, "light").await;
    audit(c, &format!("{what}, light")).await;
    set_color_scheme(t, c, "dark").await;
    audit(c, &format!("{what}, dark")).await;
    set_color_scheme(t, c, "light").await;
}

/// A guest sends `frame` (a `send`, `edit`, `delete` or `react`) and waits until the room has
/// stored it (the frame of `answer` type comes back).
async fn act(g: &mut Guest, frame: Value, answer: &str) -> Value {
    g.frame(frame).await;
    g.next_of(answer).await
}

/// Fills room `room` around the browser `c` (signed in as alice): bob and carol talk in runs
/// (so some messages continue their author's group), one message is a reply, one is edited, one
/// is deleted, messages carry reactions (one of them alice's), alice has messages of her own
/// (one edited), and bob is typing.
async fn busy_room(t: &TestCtx, c: &Client, room: &str) -> (Guest, Guest) {
    enter_room(c, &t.base, room, "alice").await;
    let mut bob = Guest::connect(t.port, "bob").await;
    let mut carol = Guest::connect(t.port, "carol").await;
    bob.join(room).await;
    carol.join(room).await;
    for i in 1..=24 {
        let (g, name) = if (i - 1) / 3 % 2 == 0 {
            (&mut bob, "bob")
        } else {
            (&mut carol, "carol")
        };
        let text = format!("{name}'s message number {i}, about nothing much");
        g.send(room, &text).await;
        g.wait_for_text(&text).await;
    }
    let reply = json!({"type": "send", "room": room, "text": "answering the second one",
                       "client_id": "bob-reply", "reply_to": 2});
    bob.frame(reply).await;
    bob.wait_for_text("answering the second one").await;
    act(
        &mut carol,
        json!({"type": "edit", "room": room, "seq": 4, "text": "carol's fourth, said better", "client_id": "e-1"}),
        "edited",
    )
    .await;
    act(
        &mut bob,
        json!({"type": "delete", "room": room, "seq": 1, "client_id": "d-1"}),
        "deleted",
    )
    .await;
    act(
        &mut carol,
        json!({"type": "react", "room": room, "seq": 3, "emoji": "👍", "client_id": "r-1"}),
        "reaction",
    )
    .await;
    act(
        &mut bob,
        json!({"type": "react", "room": room, "seq": 5, "emoji": "🎉", "client_id": "r-2"}),
        "reaction",
    )
    .await;
    eventually("the room to show what bob and carol said", || async {
        let n = messages(c).await.len();
        if n == 25 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;

    say_and_wait_confirmed(c, "alice here, catching up").await;
    say_and_wait_confirmed(c, "and a second line from alice").await;
    say_and_wait_confirmed(c, "a third, to edit").await;
    let own: i64 = js(
        c,
        "return Number([...document.querySelectorAll('#messages li.message.own')].pop().dataset.seq);",
    )
    .await;
    click(c, &format!("#messages li[data-seq='{own}'] .message-edit")).await;
    wait_displayed(c, &format!("#messages li[data-seq='{own}'] .edit-box")).await;
    c.active_element()
        .await
        .unwrap()
        .send_keys(&format!(" (fixed){}", Key::Enter))
        .await
        .unwrap();
    wait_texts_contain(c, "a third, to edit (fixed)").await;
    // alice's own reaction: a pressed chip beside carol's.
    click(c, "#messages li[data-seq='3'] .message-react").await;
    click(
        c,
        "#messages li[data-seq='3'] .reaction-option[data-emoji='👍']",
    )
    .await;
    wait_chips(c, 3, &[("👍", 2, true)]).await;

    bob.frame(json!({"type": "typing", "room": room})).await;
    eventually("bob to show as typing", || async {
        let line = text_of(c, "#typing").await;
        if line == "bob is typing…" {
            Ok(())
        } else {
            Err(line)
        }
    })
    .await;
    (bob, carol)
}

#[tokio::test]
async fn the_lobby_has_no_axe_violations_at_desktop_width() {
    browser_test(|t| async move {
        let c = t.user().await;
        lobby_audits(&t, &c).await;
    })
    .await;
}

#[tokio::test]
async fn the_lobby_has_no_axe_violations_at_phone_width() {
    browser_test(|t| async move {
        let c = t.phone_user().await;
        lobby_audits(&t, &c).await;
    })
    .await;
}

/// The lobby signed out (the sign-in card, with the sign-up form open) and signed in (with rooms).
async fn lobby_audits(t: &TestCtx, c: &Client) {
    let mut bob = Guest::connect(t.port, "bob").await;
    bob.join("general").await;
    c.goto(&format!("{}/", t.base)).await.unwrap();
    wait_displayed(c, "#name").await;
    audit_both_schemes(t, c, "the lobby, signed out").await;
    click(c, "#show-signup").await;
    wait_displayed(c, "#signup-username").await;
    audit(c, "the lobby's sign-up form").await;
    c.refresh().await.unwrap();
    sign_in_at_lobby(c, &t.base, "alice").await;
    wait_lobby_live(c).await;
    wait_room_count(c, "general", 1).await;
    audit_both_schemes(t, c, "the lobby, signed in").await;
}

#[tokio::test]
async fn a_busy_room_has_no_axe_violations_at_desktop_width() {
    browser_test(|t| async move {
        let c = t.user().await;
        let _talkers = busy_room(&t, &c, "busy").await;
        audit_both_schemes(&t, &c, "a busy room").await;
        // A message's actions, and the reaction picker, as a keyboard user meets them.
        click(&c, "#messages li[data-seq='2'] .message-react").await;
        wait_displayed(&c, "#messages li[data-seq='2'] .reaction-picker").await;
        audit(&c, "a busy room with the reaction picker open").await;
        // Offline: the reconnecting banner, the dimmed members list and a message waiting to go.
        t.set_offline(&c, true).await;
        wait_displayed(&c, "#banner").await;
        type_message(&c, "said while offline").await;
        wait_displayed(&c, "#messages li.pending .send-status").await;
        audit_both_schemes(&t, &c, "a busy room while reconnecting").await;
        t.set_offline(&c, false).await;
        say_and_wait_confirmed(&c, "back again").await;
    })
    .await;
}

#[tokio::test]
async fn a_busy_room_has_no_axe_violations_at_phone_width() {
    browser_test(|t| async move {
        let c = t.phone_user().await;
        let _talkers = busy_room(&t, &c, "busy").await;
        audit_both_schemes(&t, &c, "a busy room on a phone").await;
        click(&c, "#members-toggle").await;
        wait_displayed(&c, "#members-close").await;
        audit(&c, "a busy room on a phone, members panel open").await;
    })
    .await;
}

#[tokio::test]
async fn the_admin_view_has_no_axe_violations_at_desktop_and_phone_width() {
    browser_test(|t| async move {
        let mut bob = Guest::connect(t.port, "bob").await;
        bob.join("general").await;
        bob.send("general", "hello").await;
        for phone in [false, true] {
            let c = t.browser(phone).await;
            let username = if phone { "phoneadmin" } else { "deskadmin" };
            sign_up(&c, &t.base, username, "Admin").await;
            let (granted, said) = t.server.lock().await.admin(&["grant", username]).await;
            assert!(granted, "{said}");
            c.goto(&format!("{}/admin", t.base)).await.unwrap();
            wait_displayed(&c, "#busiest .admin-room").await;
            let width = if phone { "phone" } else { "desktop" };
            audit_both_schemes(&t, &c, &format!("the admin view at {width} width")).await;
        }
    })
    .await;
}

/// The element that has the focus, as `id` or else its class list.
async fn focused(c: &Client) -> String {
    js(
        c,
        "const e = document.activeElement; return e.id ? '#' + e.id : (e.className || e.tagName);",
    )
    .await
}

async fn press_key(c: &Client, keys: &str) {
    c.active_element()
        .await
        .unwrap()
        .send_keys(keys)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_phone_members_panel_is_a_modal_dialog_that_keeps_tab_inside_and_escape_returns_focus()
{
    browser_test(|t| async move {
        // Accounts, so the panel offers "Message bob": more than one control to Tab between.
        let c = t.phone_user().await;
        sign_up(&c, &t.base, "alice", "alice").await;
        let bob = t.user().await;
        sign_up(&bob, &t.base, "bob", "bob").await;
        enter_room(&c, &t.base, "modal", "alice").await;
        enter_room(&bob, &t.base, "modal", "bob").await;
        wait_members(&c, &["alice (you)", "bob"]).await;
        eventually("the panel to offer to message bob", || async {
            let offered: bool = js(&c, "return document.querySelector('#member-list .member-message') !== null;").await;
            if offered { Ok(()) } else { Err("no Message button".into()) }
        })
        .await;

        press(&c, "#members-toggle").await;
        eventually("the panel to open with the focus in it", || async {
            let at = focused(&c).await;
            if at == "#members-close" { Ok(()) } else { Err(at) }
        })
        .await;
        assert_eq!(attr_of(&c, "#members", "role").await, "dialog");
        assert_eq!(attr_of(&c, "#members", "aria-modal").await, "true");
        assert_eq!(attr_of(&c, "#members-toggle", "aria-expanded").await, "true");
        let behind_inert: bool = js(
            &c,
            "return document.querySelector('.topbar').inert && document.querySelector('.conversation').inert;",
        )
        .await;
        assert!(behind_inert, "the page behind the panel is inert");

        // Tab, forwards and back, many more times than the panel has controls: the focus never
        // leaves it.
        let mut seen = std::collections::BTreeSet::new();
        for keys in [Key::Tab.to_string(), format!("{}{}{}", Key::Shift, Key::Tab, Key::Null)] {
            for _ in 0..12 {
                press_key(&c, &keys).await;
                let inside: bool =
                    js(&c, "return document.getElementById('members').contains(document.activeElement);").await;
                let at = focused(&c).await;
                assert!(inside, "Tab left the members panel for {at}");
                seen.insert(at);
            }
        }
        assert!(seen.len() >= 2, "Tab moved between the panel's controls: {seen:?}");

        press_key(&c, &Key::Escape.to_string()).await;
        eventually("Escape to close the panel and return the focus", || async {
            let at = focused(&c).await;
            let open = attr_of(&c, "#members-toggle", "aria-expanded").await;
            if at == "#members-toggle" && open == "false" { Ok(()) } else { Err(format!("{at} {open}")) }
        })
        .await;
        assert_eq!(attr_of(&c, "#members", "aria-modal").await, "");
        let inert: bool = js(&c, "return document.querySelector('.conversation').inert;").await;
        assert!(!inert, "the conversation is usable again");

        // On a wide screen the same panel is an ordinary region beside the conversation.
        assert_eq!(attr_of(&bob, "#members", "role").await, "");
        assert!(is_displayed(&bob, "#member-list").await);
    })
    .await;
}

/// The lines the polite live region holds, oldest first.
async fn announced(c: &Client) -> Vec<String> {
    js(
        c,
        "return [...document.querySelectorAll('#announcer p')].map(p => p.textContent);",
    )
    .await
}

#[tokio::test]
async fn new_messages_edits_and_deletions_are_announced_politely_but_the_backlog_is_not() {
    browser_test(|t| async move {
        let mut bob = Guest::connect(t.port, "bob").await;
        bob.join("said").await;
        for i in 1..=60 {
            bob.send("said", &format!("old news {i}")).await;
        }
        bob.wait_for_text("old news 60").await;

        let c = t.user().await;
        enter_room(&c, &t.base, "said", "alice").await;
        wait_seq_range(&c, 11, 60).await;
        // Older pages too: scroll to the top until the start of the room is shown.
        eventually("the start of the room", || async {
            c.execute("document.getElementById('scroller').scrollTop = 0;", vec![])
                .await
                .map_err(|e| e.to_string())?;
            if is_displayed(&c, "#history-start").await { Ok(()) } else { Err("not yet".into()) }
        })
        .await;
        wait_seq_range(&c, 1, 60).await;
        assert_eq!(attr_of(&c, "#announcer", "aria-live").await, "polite");
        assert_eq!(attr_of(&c, "#messages", "aria-live").await, "", "the list is not a live region");
        assert_eq!(attr_of(&c, "#messages", "role").await, "", "the list is a plain list");
        assert!(announced(&c).await.is_empty(), "the backlog and older pages are not read out");

        // Said while alice is here: bob's message, his edit, his deletion. alice's own message
        // is not read back to her.
        say_and_wait_confirmed(&c, "hello bob").await;
        bob.send("said", "fresh news").await;
        wait_texts_contain(&c, "fresh news").await;
        bob.frame(json!({"type": "edit", "room": "said", "seq": 59, "text": "old news, revised", "client_id": "e-1"}))
            .await;
        wait_texts_contain(&c, "old news, revised").await;
        bob.frame(json!({"type": "delete", "room": "said", "seq": 58, "client_id": "d-1"}))
            .await;
        wait_placeholder(&c, 58, "bob").await;
        eventually("the live region to say what happened", || async {
            let said = announced(&c).await;
            if said == ["bob: fresh news", "bob edited a message", "A message by bob was deleted"] {
                Ok(())
            } else {
                Err(format!("{said:?}"))
            }
        })
        .await;

        // What a resume brings back is counted, not read out.
        t.set_offline(&c, true).await;
        eventually("the page to notice", || async {
            let state = attr_of(&c, "#status", "data-state").await;
            if state == "reconnecting" { Ok(()) } else { Err(state) }
        })
        .await;
        bob.send("said", "while you were away 1").await;
        bob.send("said", "while you were away 2").await;
        bob.wait_for_text("while you were away 2").await;
        t.set_offline(&c, false).await;
        wait_texts_contain(&c, "while you were away 2").await;
        let said = announced(&c).await;
        assert_eq!(said.last().map(String::as_str), Some("2 new messages"), "{said:?}");
        assert!(!said.iter().any(|s| s.contains("while you were away")), "{said:?}");

        // A deleted message's text leaves the live region too, not only the list.
        let fresh: i64 = js(
            &c,
            "return Number([...document.querySelectorAll('#messages li.message')].find(li => li.querySelector('.text').textContent === 'fresh news').dataset.seq);",
        )
        .await;
        bob.frame(json!({"type": "delete", "room": "said", "seq": fresh, "client_id": "d-2"}))
            .await;
        wait_placeholder(&c, fresh, "bob").await;
        assert!(!dom_contains(&c, "fresh news").await, "{:?}", announced(&c).await);
    })
    .await;
}

#[tokio::test]
async fn confirming_ones_own_message_keeps_the_same_list_item() {
    browser_test(|t| async move {
        let c = t.user().await;
        enter_room(&c, &t.base, "inplace", "alice").await;
        // Each pending item is marked as it appears; the confirmed message must be that item.
        c.execute(
            "window.pendingItems = [];
             new MutationObserver(() => {
               for (const li of document.querySelectorAll('#messages li.pending')) {
                 if (!window.pendingItems.includes(li)) { li.dataset.marker = 'p' + window.pendingItems.length; window.pendingItems.push(li); }
               }
             }).observe(document.getElementById('messages'), {childList: true, subtree: true});
             window.removedItems = 0;
             new MutationObserver((records) => {
               for (const r of records) window.removedItems += [...r.removedNodes].filter(n => n.classList?.contains('message')).length;
             }).observe(document.getElementById('messages'), {childList: true});",
            vec![],
        )
        .await
        .unwrap();
        say_and_wait_confirmed(&c, "first of mine").await;
        say_and_wait_confirmed(&c, "second of mine").await;
        let seen: Vec<(Option<String>, bool, bool)> = js(
            &c,
            "return [...document.querySelectorAll('#messages li.message')].map(li =>
                [li.dataset.marker ?? null, window.pendingItems.includes(li), li.classList.contains('pending')]);",
        )
        .await;
        assert_eq!(
            seen,
            [
                (Some("p0".to_string()), true, false),
                (Some("p1".to_string()), true, false)
            ],
            "each confirmed message is the item shown while it was pending"
        );
        let removed: u64 = js(&c, "return window.removedItems;").await;
        assert_eq!(removed, 0, "no message was taken out of the list");
        assert_eq!(seqs(&c).await, [1, 2]);
    })
    .await;
}
