//! Accounts in a browser: signing up and in, devices, guest marks.

use crate::*;

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
