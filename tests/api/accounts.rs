//! Accounts over HTTP against a real server: registration and its rules, sign-in, a guest who
//! registers keeping their id, the session list and revoking one (4003 on its sockets), name
//! and password changes, the sign-in rate limits, and the admin commands beside a running server.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Client, TestServer, session_status, sign_in, upgrade_status, ws_request};

/// One HTTP exchange: the status, the `name=value` of any session cookie set, and the body.
async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    cookie: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut request =
        reqwest::Client::new().request(method, format!("{}{path}", server.base_url()));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .filter(|pair| !pair.ends_with('='))
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, cookie, body)
}

async fn register(
    server: &TestServer,
    body: Value,
    cookie: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    call(
        server,
        reqwest::Method::POST,
        "/api/register",
        cookie,
        Some(body),
    )
    .await
}

async fn login(
    server: &TestServer,
    username: &str,
    password: &str,
) -> (StatusCode, Option<String>, Value) {
    let body = json!({"username": username, "password": password});
    call(
        server,
        reqwest::Method::POST,
        "/api/login",
        None,
        Some(body),
    )
    .await
}

/// Registers `username` with a fixed password; returns the session cookie and the user.
async fn account(server: &TestServer, username: &str) -> (String, Value) {
    let (status, cookie, body) = register(
        server,
        json!({"username": username, "password": "hunter2hunter2"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (cookie.expect("a session cookie"), body["user"].clone())
}

async fn session_user(server: &TestServer, cookie: &str) -> Value {
    let (status, _, body) = call(
        server,
        reqwest::Method::GET,
        "/api/session",
        Some(cookie),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["user"].clone()
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn registering_creates_an_account_that_is_not_a_guest_everywhere() {
    let server = TestServer::start().await;
    let (status, cookie, body) = register(
        &server,
        json!({"username": "DANA", "password": "correct horse"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user = &body["user"];
    assert_eq!(user["username"], "dana", "stored and returned lowercase");
    assert_eq!(
        user["name"], "dana",
        "without a name, the username is the display name"
    );
    assert_eq!(user["guest"], false);
    let cookie = cookie.expect("the session cookie");
    let me = session_user(&server, &cookie).await;
    assert_eq!(me["id"], user["id"]);
    assert_eq!(me["username"], "dana");
    assert_eq!(me["guest"], false);

    // The WebSocket user is the account, and frames say it is not a guest.
    let mut client = server.client_with_cookie(&cookie).await;
    assert_eq!(client.user["id"], user["id"]);
    assert_eq!(client.user["guest"], false);
    client.join("acc").await;
    let message = client.say("acc", "hello").await;
    assert_eq!(message["user"]["guest"], false);
    let mut reader = server.client("ann").await;
    assert_eq!(reader.user["guest"], true, "?name= connections are guests");
    let joined = reader.join("acc").await;
    assert_eq!(
        joined["messages"][0]["user"]["guest"], false,
        "stored with the message"
    );

    // Any case signs in; a second account cannot take the name in another case.
    let (status, login_cookie, body) = login(&server, "DaNa", "correct horse").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["id"], user["id"]);
    assert!(login_cookie.is_some());
    let (status, _, body) = register(
        &server,
        json!({"username": "Dana", "password": "another one"}),
        None,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "username_taken")
    );
}

#[tokio::test]
async fn bad_usernames_and_passwords_get_their_own_codes() {
    let server = TestServer::start().await;
    for username in ["ab", "with space", "dàna", &"x".repeat(33)] {
        let (status, cookie, body) = register(
            &server,
            json!({"username": username, "password": "long enough"}),
            None,
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_username"),
            "{username:?}"
        );
        assert!(cookie.is_none());
    }
    for password in ["short", &"x".repeat(257)] {
        let (status, _, body) = register(
            &server,
            json!({"username": "okname", "password": password}),
            None,
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_password")
        );
    }
    let (status, _, body) = register(
        &server,
        json!({"username": "okname", "password": "long enough", "name": "\u{202E}evil"}),
        None,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_name")
    );
    // Nothing was created by the refusals.
    let (status, _, _) = login(&server, "okname", "long enough").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let server = TestServer::start().await;
    account(&server, "erin").await;
    let (wrong_status, wrong_cookie, wrong_body) = login(&server, "erin", "not the password").await;
    let (unknown_status, _, unknown_body) = login(&server, "nobody", "not the password").await;
    let (bad_status, _, bad_body) = login(&server, "not a username!", "whatever1").await;
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    assert!(wrong_cookie.is_none());
    assert_eq!(code(&wrong_body), "invalid_credentials");
    assert_eq!(wrong_body, unknown_body);
    assert_eq!(wrong_body, bad_body);
    assert_eq!(unknown_status, wrong_status);
    assert_eq!(bad_status, wrong_status);
}

#[tokio::test]
async fn a_guest_who_registers_keeps_their_id_name_and_messages() {
    let server = TestServer::start().await;
    let (guest_cookie, guest) = sign_in(&server.base_url(), "Zoë").await;
    let guest_id = guest["user"]["id"].clone();
    assert_eq!(guest["user"]["guest"], true);
    let mut client = server.client_with_cookie(&guest_cookie).await;
    client.join("keep").await;
    client.say("keep", "from my guest days").await;

    let (status, cookie, body) = register(
        &server,
        json!({"username": "zoe", "password": "a fine password"}),
        Some(&guest_cookie),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["id"], guest_id, "same user id");
    assert_eq!(body["user"]["name"], "Zoë", "kept their display name");
    assert_eq!(body["user"]["guest"], false);
    // The guest cookie is replaced and the old one revoked; its socket is closed with 4003.
    assert_eq!(client.expect_close().await, 4003);
    assert_eq!(
        session_status(&server.base_url(), &guest_cookie).await,
        StatusCode::UNAUTHORIZED
    );
    let cookie = cookie.expect("a new cookie");
    let mut again = server.client_with_cookie(&cookie).await;
    assert_eq!(again.user["id"], guest_id);
    let joined = again.join("keep").await;
    assert_eq!(
        joined["messages"][0]["user"]["id"], guest_id,
        "the earlier message is theirs"
    );
    assert_eq!(
        joined["messages"][0]["user"]["guest"], true,
        "written as a guest"
    );
}

#[tokio::test]
async fn sessions_are_listed_and_one_revoked_everywhere() {
    let server = TestServer::start().await;
    let (laptop, _) = account(&server, "frank").await;
    let (_, phone, _) = login(&server, "frank", "hunter2hunter2").await;
    let phone = phone.expect("cookie");
    let mut phone_socket = server.client_with_cookie(&phone).await;

    let (status, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/api/sessions",
        Some(&laptop),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let sessions = body["sessions"].as_array().expect("a list").clone();
    assert_eq!(sessions.len(), 2, "{body}");
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    for session in &sessions {
        assert!(session["created"].as_i64().unwrap() > 0);
        assert!(session["last_seen"].as_i64().unwrap() >= session["created"].as_i64().unwrap());
        assert!(session["user_agent"].is_string());
    }
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Someone else cannot revoke it; its owner can.
    let (stranger, _) = account(&server, "gina").await;
    let path = format!("/api/sessions/{other}");
    let (status, _, body) = call(
        &server,
        reqwest::Method::DELETE,
        &path,
        Some(&stranger),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, _, _) = call(&server, reqwest::Method::DELETE, &path, Some(&laptop), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(phone_socket.expect_close().await, 4003);
    assert_eq!(
        session_status(&server.base_url(), &phone).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        session_status(&server.base_url(), &laptop).await,
        StatusCode::OK
    );
    let (_, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/api/sessions",
        Some(&laptop),
        None,
    )
    .await;
    assert_eq!(body["sessions"].as_array().unwrap().len(), 1);
    // A revoked cookie cannot open a socket either.
    let request = ws_request(&server.ws_url(), &[("cookie", phone.as_str())]);
    let status = upgrade_status(request).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_new_name_shows_on_every_session_of_the_user() {
    let server = TestServer::start().await;
    let (one, _) = account(&server, "hana").await;
    let (_, two, _) = login(&server, "hana", "hunter2hunter2").await;
    let two = two.unwrap();
    let (status, _, body) = call(
        &server,
        reqwest::Method::PATCH,
        "/api/me",
        Some(&one),
        Some(json!({"name": "Hana B."})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["name"], "Hana B.");
    assert_eq!(session_user(&server, &two).await["name"], "Hana B.");
    let client = server.client_with_cookie(&two).await;
    assert_eq!(client.user["name"], "Hana B.");
    let (status, _, body) = call(
        &server,
        reqwest::Method::PATCH,
        "/api/me",
        Some(&one),
        Some(json!({"name": " "})),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_name")
    );
    let (status, _, _) = call(
        &server,
        reqwest::Method::PATCH,
        "/api/me",
        None,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn changing_the_password_signs_out_the_other_sessions() {
    let server = TestServer::start().await;
    let (here, _) = account(&server, "ivan").await;
    let (_, elsewhere, _) = login(&server, "ivan", "hunter2hunter2").await;
    let elsewhere = elsewhere.unwrap();
    let mut elsewhere_socket = server.client_with_cookie(&elsewhere).await;
    let change = |old: &str, new: &str| json!({"old": old, "new": new});

    let (status, _, body) = call(
        &server,
        reqwest::Method::POST,
        "/api/me/password",
        Some(&here),
        Some(change("wrong password", "new password 1")),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "wrong_password")
    );
    let (status, _, body) = call(
        &server,
        reqwest::Method::POST,
        "/api/me/password",
        Some(&here),
        Some(change("hunter2hunter2", "short")),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_password")
    );
    let (status, _, _) = call(
        &server,
        reqwest::Method::POST,
        "/api/me/password",
        Some(&here),
        Some(change("hunter2hunter2", "new password 1")),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    assert_eq!(elsewhere_socket.expect_close().await, 4003);
    assert_eq!(
        session_status(&server.base_url(), &elsewhere).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        session_status(&server.base_url(), &here).await,
        StatusCode::OK
    );
    assert_eq!(
        login(&server, "ivan", "hunter2hunter2").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&server, "ivan", "new password 1").await.0,
        StatusCode::OK
    );

    let (guest, _) = sign_in(&server.base_url(), "guest").await;
    let (status, _, body) = call(
        &server,
        reqwest::Method::POST,
        "/api/me/password",
        Some(&guest),
        Some(change("whatever1", "whatever2")),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "account_required")
    );
}

#[tokio::test]
async fn signing_in_is_rate_limited_per_username_whatever_the_password() {
    let rate = |s: &str| s.parse().unwrap();
    let server = TestServer::start_with(|config| config.limit_sign_in_user = rate("2+1/h")).await;
    account(&server, "jack").await; // the registration took one token of "jack"
    assert_eq!(
        login(&server, "jack", "wrong password").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _, body) = login(&server, "JACK", "hunter2hunter2").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert!(body["error"]["retry_after_ms"].as_u64().unwrap() > 0);
    // Another username is not held back by jack's bucket.
    account(&server, "kate").await;
    assert_eq!(
        login(&server, "kate", "hunter2hunter2").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn admin_commands_work_beside_a_running_server() {
    let server = TestServer::start().await;
    let (cookie, _) = account(&server, "lena").await;
    assert_eq!(session_user(&server, &cookie).await["admin"], false);

    let (ok, said) = server.admin(&["grant", "LENA"]).await;
    assert!(ok, "{said}");
    assert_eq!(
        session_user(&server, &cookie).await["admin"],
        true,
        "at once, same session"
    );
    let (ok, said) = server.admin(&["revoke", "lena"]).await;
    assert!(ok, "{said}");
    assert_eq!(session_user(&server, &cookie).await["admin"], false);
    let (ok, said) = server.admin(&["grant", "nobody"]).await;
    assert!(!ok && said.contains("nobody"), "{said}");

    let (ok, said) = server.admin(&["reset-password", "lena"]).await;
    assert!(ok, "{said}");
    let password = said
        .lines()
        .find_map(|line| line.strip_prefix("new password for lena: "))
        .expect("the new password is printed")
        .trim()
        .to_owned();
    assert_eq!(
        session_status(&server.base_url(), &cookie).await,
        StatusCode::UNAUTHORIZED,
        "sessions ended"
    );
    assert_eq!(
        login(&server, "lena", "hunter2hunter2").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login(&server, "lena", &password).await.0, StatusCode::OK);
}

#[tokio::test]
async fn guest_sessions_are_listed_and_signing_out_closes_their_sockets() {
    let server = TestServer::start().await;
    let (cookie, _) = sign_in(&server.base_url(), "Moe").await;
    let (status, _, body) = call(
        &server,
        reqwest::Method::GET,
        "/api/sessions",
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["sessions"].as_array().unwrap().len(), 1);
    let mut socket: Client = server.client_with_cookie(&cookie).await;
    let (status, _, _) = call(
        &server,
        reqwest::Method::DELETE,
        "/api/session",
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(socket.expect_close().await, 4003);
    assert_eq!(
        session_status(&server.base_url(), &cookie).await,
        StatusCode::UNAUTHORIZED
    );
}
