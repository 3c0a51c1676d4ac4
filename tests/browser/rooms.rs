//! Private rooms, moderation and direct messages in a browser.

use crate::*;

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
        // The lobby's own status says "Connected" too: wait for the room's address first.
        eventually("the new room to open", || async {
            let path = olga.current_url().await.unwrap().path().to_string();
            if path == "/chat/secret-plans/" { Ok(()) } else { Err(path) }
        })
        .await;
        wait_connected(&olga).await;
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
