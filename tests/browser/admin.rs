//! The admin view in a browser: an administrator watches live figures and the busiest rooms,
//! bans a user (whose page says so at once) and lifts the ban, and closes a guest's connections;
//! anyone else is told the page is not for them.

use crate::*;

/// Waits until the figure `css` on the admin page satisfies `holds`; returns its text.
async fn wait_figure(c: &Client, css: &str, holds: impl Fn(&str) -> bool) -> String {
    eventually(&format!("figure {css}"), || async {
        let text = text_of(c, css).await;
        if holds(&text) { Ok(text) } else { Err(text) }
    })
    .await
}

/// The names listed under the busiest room `room` on the admin page.
async fn busiest_members(c: &Client, room: &str) -> Vec<String> {
    js(
        c,
        &format!(
            "const room = [...document.querySelectorAll('#busiest .admin-room')]
                .find(r => r.querySelector('h3 a').textContent === '#{room}');
             return room ? [...room.querySelectorAll('.admin-members li .admin-user > span:first-child')]
                .map(s => s.textContent).sort() : [];"
        ),
    )
    .await
}

#[tokio::test]
async fn an_administrator_watches_live_figures_bans_and_lifts_a_ban_and_closes_connections() {
    browser_test(|t| async move {
        let root = t.user().await;
        sign_up(&root, &t.base, "root", "Root").await;
        let (granted, said) = t.server.lock().await.admin(&["grant", "root"]).await;
        assert!(granted, "{said}");

        let ann = t.user().await;
        enter_room(&ann, &t.base, "general", "ann").await;
        let troll = t.user().await;
        sign_up(&troll, &t.base, "troll", "Troll").await;
        open_room_from_lobby(&troll, "general").await;
        say_and_wait_confirmed(&troll, "first!").await;

        root.goto(&format!("{}/admin", t.base)).await.unwrap();
        wait_displayed(&root, "#figures").await;
        wait_figure(&root, "#fig-connections", |text| {
            text.parse::<u64>().is_ok_and(|n| n >= 3)
        })
        .await;
        wait_figure(&root, "#fig-rooms", |text| text == "1").await;
        wait_figure(&root, "#fig-members", |text| text == "2").await;
        eventually("both members listed under #general", || async {
            match busiest_members(&root, "general").await.as_slice() {
                [a, b] if a == "Troll" && b == "ann" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        // Traffic moves the live figures without a reload.
        for i in 0..3 {
            say_and_wait_confirmed(&ann, &format!("hello {i}")).await;
        }
        wait_figure(&root, "#fig-messages", |text| text != "0.0" && text != "–").await;
        wait_figure(&root, "#fig-p99", |text| text.starts_with('≤')).await;
        assert_eq!(attr_of(&root, "#status", "data-state").await, "connected");
        save_screenshot(&root, "admin.png").await;

        // Ban the troll from the members list: a confirmation, then their page says so.
        let ban = "#busiest .admin-members button[aria-label='Ban Troll from the server']";
        click(&root, ban).await;
        root.accept_alert().await.unwrap();
        wait_visible_text(&root, "#action-result").await;
        assert!(
            text_of(&root, "#action-result")
                .await
                .contains("Troll is banned")
        );
        eventually("the troll's page says they are banned", || async {
            let text = text_of(&troll, "#room-closed-text").await;
            if text == "You are banned from this server." {
                Ok(())
            } else {
                Err(text)
            }
        })
        .await;
        assert_eq!(
            session_user(&troll).await,
            None,
            "the ban ended the session"
        );
        eventually("the banned list shows the troll", || async {
            let text = text_of(&root, "#banned").await;
            if text.contains("Troll") {
                Ok(())
            } else {
                Err(text)
            }
        })
        .await;

        // Lift it: the list empties, and the troll may sign in again.
        click(&root, "#banned button[aria-label='Lift ban for Troll']").await;
        wait_displayed(&root, "#banned-empty").await;
        troll.goto(&format!("{}/", t.base)).await.unwrap();
        wait_displayed(&troll, "#show-login").await;
        click(&troll, "#show-login").await;
        fill(&troll, "#login-username", "troll").await;
        fill(&troll, "#login-password", "a long enough password").await;
        click(&troll, "#login-submit").await;
        wait_signed_in_as(&troll, "Troll", Some("@troll")).await;

        // Close the guest's connections from the form, by the id a guest has.
        let ann_id = session_user_id(&ann).await;
        fill(&root, "#user-key", &ann_id).await;
        click(&root, "#user-disconnect").await;
        eventually("ann's page says an administrator closed it", || async {
            let text = text_of(&ann, "#room-closed-text").await;
            if text.starts_with("An administrator closed your connection") {
                Ok(())
            } else {
                Err(text)
            }
        })
        .await;
        assert!(session_user(&ann).await.is_some(), "ann's session stays");
        let stopped: bool = js(&ann, "return document.getElementById('composer').disabled").await;
        assert!(stopped, "the composer stops");
    })
    .await;
}

#[tokio::test]
async fn the_admin_page_tells_everyone_else_it_is_not_for_them() {
    browser_test(|t| async move {
        let stranger = t.user().await;
        stranger.goto(&format!("{}/admin", t.base)).await.unwrap();
        wait_displayed(&stranger, "#refused").await;
        assert!(
            text_of(&stranger, "#refused-text")
                .await
                .contains("Sign in")
        );
        sign_up(&stranger, &t.base, "plain", "Plain").await;
        stranger.goto(&format!("{}/admin", t.base)).await.unwrap();
        wait_displayed(&stranger, "#refused").await;
        assert_eq!(
            text_of(&stranger, "#refused-text").await,
            "This page is for server administrators."
        );
        assert!(!is_displayed(&stranger, "#admin").await);
    })
    .await;
}
