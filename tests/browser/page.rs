//! What a user does on a page and what they see there, as the scenarios say it.

use crate::*;

// ---- what a user does -----------------------------------------------------------------------

pub(crate) async fn sign_in_at_lobby(c: &Client, base: &str, name: &str) {
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
pub(crate) async fn sign_up_at_lobby(
    c: &Client,
    username: &str,
    password: &str,
    name: Option<&str>,
) {
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
pub(crate) async fn wait_signed_in_as(c: &Client, name: &str, username: Option<&str>) {
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
pub(crate) async fn fill(c: &Client, css: &str, text: &str) {
    let input = c.find(Locator::Css(css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

pub(crate) async fn open_room_from_lobby(c: &Client, room: &str) {
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
pub(crate) async fn enter_room(c: &Client, base: &str, room: &str, name: &str) {
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
pub(crate) async fn type_message(c: &Client, text: &str) {
    let composer = c.find(Locator::Css("#composer")).await.unwrap();
    let newline = format!("{}{}{}", Key::Shift, Key::Enter, Key::Null);
    let keys = text.replace('\n', &newline);
    composer
        .send_keys(&format!("{keys}{}", Key::Enter))
        .await
        .unwrap();
}

pub(crate) async fn say_and_wait_confirmed(c: &Client, text: &str) {
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

pub(crate) async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

pub(crate) async fn save_screenshot(c: &Client, file: &str) {
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
pub(crate) struct Shown {
    pub(crate) seq: Option<i64>,
    pub(crate) author: String,
    pub(crate) text: String,
    pub(crate) pending: bool,
    pub(crate) own: bool,
}

pub(crate) async fn messages(c: &Client) -> Vec<Shown> {
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

pub(crate) async fn seqs(c: &Client) -> Vec<i64> {
    js(c, "return [...document.querySelectorAll('#messages li.message[data-seq]')].map(li => Number(li.dataset.seq));").await
}

pub(crate) async fn members(c: &Client) -> Vec<String> {
    js(
        c,
        "return [...document.querySelectorAll('#member-list li')].map(li =>
            li.querySelector('.member-name').textContent + (li.querySelector('.you') ? ' (you)' : ''));",
    )
    .await
}

pub(crate) async fn wait_members(c: &Client, expected: &[&str]) {
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

pub(crate) async fn wait_texts(c: &Client, expected: &[&str]) {
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

pub(crate) async fn wait_texts_contain(c: &Client, text: &str) {
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

pub(crate) async fn wait_seq_range(c: &Client, first: i64, last: i64) {
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

pub(crate) async fn wait_connected(c: &Client) {
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

pub(crate) async fn wait_lobby_live(c: &Client) {
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

pub(crate) async fn wait_room_count(c: &Client, room: &str, online: u64) {
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

pub(crate) async fn wait_displayed(c: &Client, css: &str) {
    eventually(&format!("{css} to be shown"), || async {
        if is_displayed(c, css).await {
            Ok(())
        } else {
            Err("not shown".into())
        }
    })
    .await;
}

pub(crate) async fn wait_visible_text(c: &Client, css: &str) -> String {
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

pub(crate) async fn is_displayed(c: &Client, css: &str) -> bool {
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

pub(crate) async fn text_of(c: &Client, css: &str) -> String {
    js(
        c,
        &format!(
            "const e = document.querySelector({}); return e ? e.textContent : '';",
            json!(css)
        ),
    )
    .await
}

pub(crate) async fn value_of(c: &Client, css: &str) -> String {
    js(
        c,
        &format!("return document.querySelector({}).value;", json!(css)),
    )
    .await
}

pub(crate) async fn attr_of(c: &Client, css: &str, name: &str) -> String {
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

pub(crate) async fn js<T: DeserializeOwned>(c: &Client, script: &str) -> T {
    let value = c
        .execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"));
    serde_json::from_value(value)
        .unwrap_or_else(|e| panic!("unexpected script result: {e}\n{script}"))
}

/// The id of the signed-in user, from the session API.
pub(crate) async fn session_user_id(c: &Client) -> String {
    let script = "const done = arguments[arguments.length - 1];
        fetch('/api/session').then(r => r.json()).then(b => done(b.user.id), e => done(String(e)));";
    let value = c.execute_async(script, vec![]).await.expect("script runs");
    value.as_str().expect("an id").to_owned()
}

/// The signed-in user as `GET /api/session` tells it, or `None` on 401.
pub(crate) async fn session_user(c: &Client) -> Option<Value> {
    let script = "const done = arguments[arguments.length - 1];
        fetch('/api/session', {cache: 'no-store'}).then(r => r.status === 401 ? null : r.json().then(b => b.user))
            .then(done, e => done({error: String(e)}));";
    let value = c.execute_async(script, vec![]).await.expect("script runs");
    assert!(value.get("error").is_none(), "{value}");
    (!value.is_null()).then_some(value)
}

/// Creates an account `username` with display name `name` from the lobby's sign-up form.
pub(crate) async fn sign_up(c: &Client, base: &str, username: &str, name: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    wait_displayed(c, "#show-signup").await;
    sign_up_at_lobby(c, username, "a long enough password", Some(name)).await;
}

/// One HTTP API request from the browser `c` (its cookie, its origin); panics on an error.
pub(crate) async fn api_as(c: &Client, method: &str, path: &str, body: Value) -> Value {
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

/// Presses Enter on the element `css`, as a keyboard user would.
pub(crate) async fn press(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
}

/// Waits for the reaction chips of message `seq` to be `expected`: (emoji, count, pressed).
pub(crate) async fn wait_chips(c: &Client, seq: i64, expected: &[(&str, i64, bool)]) {
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
pub(crate) async fn resume_cursor_after_a_drop(t: &TestCtx, c: &Client) -> Option<i64> {
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
pub(crate) async fn press_delete(c: &Client, seq: i64) {
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
pub(crate) async fn delete_offered(c: &Client) -> Vec<(i64, bool)> {
    js(
        c,
        "return [...document.querySelectorAll('#messages li.message[data-seq]:not(.deleted)')]
            .map(li => [Number(li.dataset.seq), li.querySelector('.message-delete') !== null]);",
    )
    .await
}

pub(crate) async fn texts(c: &Client) -> Vec<String> {
    messages(c).await.into_iter().map(|m| m.text).collect()
}

/// Whether `text` is anywhere in the page's DOM, attributes included.
pub(crate) async fn dom_contains(c: &Client, text: &str) -> bool {
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
pub(crate) async fn wait_placeholder(c: &Client, seq: i64, author: &str) {
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
pub(crate) async fn guest_marks(c: &Client, css: &str) -> Vec<bool> {
    js(
        c,
        &format!("return [...document.querySelectorAll('{css}')].map(el => el.querySelector('.guest-mark') !== null);"),
    )
    .await
}

/// The `.user-tag` of each element matching `css`, in document order.
pub(crate) async fn tags(c: &Client, css: &str) -> Vec<Option<String>> {
    js(
        c,
        &format!(
            "return [...document.querySelectorAll('{css}')].map(el => el.querySelector('.user-tag')?.textContent ?? null);"
        ),
    )
    .await
}

/// web/common.js's `idHash`: FNV-1a over UTF-16 units, then murmur3's finaliser.
pub(crate) fn id_hash(id: &str) -> u32 {
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

pub(crate) fn id_tag(id: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let h = id_hash(id);
    let chars = [15, 10, 5, 0].map(|shift| char::from(ALPHABET[((h >> shift) & 31) as usize]));
    format!("#{}", chars.iter().collect::<String>())
}

pub(crate) fn id_colour(id: &str) -> String {
    format!("c{}", (id_hash(id) >> 20) % 12)
}
