//! `POST /api/v1/users`, `GET /api/v1/users`, `GET /api/v1/users/{id}`.

use crate::common::{on_both_backends, Backend, TestApp, PASSWORD};
use axum::http::StatusCode;
use std::collections::HashSet;
use uuid::Uuid;

on_both_backends!(
    signup_returns_201_with_the_user_and_its_location,
    usernames_are_case_insensitive,
    a_taken_username_is_409,
    invalid_usernames_are_422_naming_the_rule,
    invalid_passwords_are_422_naming_the_rule,
    fifty_concurrent_signups_of_one_name_give_exactly_one_201,
    listing_users_needs_a_token,
    listing_users_pages_in_a_stable_order,
    bad_paging_parameters_are_400,
    a_search_only_directory_answers_prefixes_of_the_minimum_length_only,
    a_user_by_id_is_200_then_404_for_unknown_and_400_for_junk,
);

async fn signup_returns_201_with_the_user_and_its_location(backend: Backend) {
    let app = TestApp::new(backend).await;
    let response = app.signup("alice", PASSWORD).await;
    assert_eq!(response.status, StatusCode::CREATED);
    let body = response.json();
    assert_eq!(body["username"], "alice");
    let id: Uuid = body["id"].as_str().expect("id").parse().expect("uuid");
    assert_eq!(id.get_version_num(), 7);
    assert!(body["created_at"].is_string());
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());
    assert_eq!(
        response.headers["location"].to_str().expect("ascii"),
        format!("/api/v1/users/{id}")
    );
}

async fn usernames_are_case_insensitive(backend: Backend) {
    let app = TestApp::new(backend).await;
    let response = app.signup("Alice.Smith", PASSWORD).await;
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.json()["username"], "alice.smith");
    app.signup("ALICE.smith", PASSWORD)
        .await
        .assert_error(StatusCode::CONFLICT, "username_taken");
    let login = app.login("ALICE.SMITH", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK);
}

async fn a_taken_username_is_409(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_user("bob").await;
    let message = app
        .signup("bob", "another long password")
        .await
        .assert_error(StatusCode::CONFLICT, "username_taken");
    assert!(message.contains("bob"), "{message}");
}

async fn invalid_usernames_are_422_naming_the_rule(backend: Backend) {
    let app = TestApp::new(backend).await;
    let long = "a".repeat(33);
    for (username, rule) in [
        ("ab", "3 to 32 characters"),
        (long.as_str(), "3 to 32 characters"),
        ("", "3 to 32 characters"),
        ("has space", "only ASCII letters"),
        ("émile", "only ASCII letters"),
        ("x/../y", "only ASCII letters"),
        ("_under", "start with a letter or a digit"),
    ] {
        let message = app
            .signup(username, PASSWORD)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_username");
        assert!(message.contains(rule), "{username:?}: {message}");
    }
}

async fn invalid_passwords_are_422_naming_the_rule(backend: Backend) {
    let app = TestApp::new(backend).await;
    let long = "p".repeat(129);
    for (password, rule) in [
        ("short", "at least 12"),
        ("", "at least 12"),
        (long.as_str(), "at most 128"),
        ("               ", "whitespace"),
    ] {
        let message = app
            .signup("carol", password)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_password");
        assert!(message.contains(rule), "{password:?}: {message}");
    }
    // Nothing was created by the refused attempts.
    assert_eq!(
        app.signup("carol", PASSWORD).await.status,
        StatusCode::CREATED
    );
}

async fn fifty_concurrent_signups_of_one_name_give_exactly_one_201(backend: Backend) {
    let app = TestApp::new(backend).await;
    let attempts = (0..50).map(|i| {
        let app = &app;
        async move {
            app.signup("popular", &format!("password number {i:02}"))
                .await
        }
    });
    let responses = futures::future::join_all(attempts).await;
    let created = responses
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one sign-up wins");
    for response in responses.iter().filter(|r| r.status != StatusCode::CREATED) {
        response.assert_error(StatusCode::CONFLICT, "username_taken");
    }
    let token = app.token("observer").await;
    let page = app
        .get("/api/v1/users?limit=100", Some(&token))
        .await
        .json();
    let popular = page["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter(|u| u["username"] == "popular")
        .count();
    assert_eq!(popular, 1);
}

async fn listing_users_needs_a_token(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.get("/api/v1/users", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing_token");
    let response = app.get("/api/v1/users", Some("garbage")).await;
    response.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(response.headers["www-authenticate"]
        .to_str()
        .expect("ascii")
        .starts_with("Bearer"));
}

async fn listing_users_pages_in_a_stable_order(backend: Backend) {
    let app = TestApp::new(backend).await;
    let mut created = Vec::new();
    for name in ["user1", "user2", "user3", "user4", "user5"] {
        created.push(app.create_user(name).await);
    }
    let token = {
        let response = app.login("user1", PASSWORD).await;
        response.json()["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    };

    let mut seen = Vec::new();
    let mut uri = "/api/v1/users?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let response = app.get(&uri, Some(&token)).await;
        assert_eq!(response.status, StatusCode::OK);
        let page = response.json();
        let users = page["users"].as_array().expect("users");
        assert!(users.len() <= 2);
        for user in users {
            seen.push(
                user["id"]
                    .as_str()
                    .expect("id")
                    .parse::<Uuid>()
                    .expect("uuid"),
            );
        }
        pages += 1;
        match page.get("next_cursor").and_then(|c| c.as_str()) {
            Some(cursor) => uri = format!("/api/v1/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created, "creation order, each user once");

    // The default page holds them all, in the same order, and repeating gives the same answer.
    let all = app.get("/api/v1/users", Some(&token)).await.json();
    let again = app.get("/api/v1/users", Some(&token)).await.json();
    assert_eq!(all, again);
    assert_eq!(all["users"].as_array().expect("users").len(), 5);
    assert!(all.get("next_cursor").is_none());
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 5);
}

async fn bad_paging_parameters_are_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let token = app.token("pager").await;
    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=ten",
        "cursor=not-a-cursor",
        "colour=blue",
    ] {
        app.get(&format!("/api/v1/users?{query}"), Some(&token))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    }
    let response = app.get("/api/v1/users?limit=100", Some(&token)).await;
    assert_eq!(response.status, StatusCode::OK);
}

async fn a_user_by_id_is_200_then_404_for_unknown_and_400_for_junk(backend: Backend) {
    let app = TestApp::new(backend).await;
    let token = app.token("dora").await;
    let id = app.create_user("erin").await;
    let response = app.get(&format!("/api/v1/users/{id}"), Some(&token)).await;
    assert_eq!(response.status, StatusCode::OK);
    let body = response.json();
    assert_eq!(body["username"], "erin");
    assert_eq!(body["id"], id.to_string());

    app.get(&format!("/api/v1/users/{}", Uuid::now_v7()), Some(&token))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/users/not-a-uuid", Some(&token))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_path");
    app.get(&format!("/api/v1/users/{id}"), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing_token");
}

on_both_backends!(
    a_search_returns_only_the_matching_users_in_pages,
    a_search_with_no_possible_match_is_empty_and_bad_search_parameters_are_400,
    the_search_is_served_by_an_index,
);

async fn a_search_returns_only_the_matching_users_in_pages(backend: Backend) {
    let app = TestApp::new(backend).await;
    // Names around the prefix in byte order, and ones holding it elsewhere than at the start.
    for name in [
        "ali", "ali.x", "ali-y", "ali_z", "alice", "alina", "alia", "alh", "alj", "a.li", "bali",
        "xalice",
    ] {
        app.create_user(name).await;
    }
    let token = app.token("zed").await;
    let mut seen = Vec::new();
    let mut uri = "/api/v1/users?q=ALI&limit=2".to_owned();
    let mut pages = 0;
    loop {
        let response = app.get(&uri, Some(&token)).await;
        assert_eq!(response.status, StatusCode::OK, "{uri}");
        let page = response.json();
        let users = page["users"].as_array().expect("users");
        assert!(users.len() <= 2);
        seen.extend(
            users
                .iter()
                .map(|u| u["username"].as_str().expect("name").to_owned()),
        );
        pages += 1;
        match page.get("next_cursor").and_then(|c| c.as_str()) {
            Some(cursor) => uri = format!("/api/v1/users?q=ali&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    // Byte order: '-' < '.' < '_' < letters.
    assert_eq!(
        seen,
        ["ali", "ali-y", "ali.x", "ali_z", "alia", "alice", "alina"],
        "every name starting with \"ali\", once, in order"
    );
    assert_eq!(pages, 4);
    let one = app.get("/api/v1/users?q=alice", Some(&token)).await.json();
    assert_eq!(one["users"].as_array().expect("users").len(), 1);
    assert_eq!(one["users"][0]["username"], "alice");
    assert!(one.get("next_cursor").is_none());
    // An empty q is the whole directory, in creation order.
    let all = app
        .get("/api/v1/users?q=&limit=100", Some(&token))
        .await
        .json();
    assert_eq!(all["users"].as_array().expect("users").len(), 13);
    assert_eq!(all["users"][0]["username"], "ali");
}

async fn a_search_with_no_possible_match_is_empty_and_bad_search_parameters_are_400(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    let token = app.token("searcher").await;
    for q in ["a%25", "a_%25", "%C3%A5", "a%20b", "nobody"] {
        let response = app.get(&format!("/api/v1/users?q={q}"), Some(&token)).await;
        assert_eq!(response.status, StatusCode::OK, "{q}");
        assert_eq!(response.json()["users"], serde_json::json!([]), "{q}");
    }
    for query in [
        format!("q={}", "a".repeat(33)),
        "q=se&cursor=not%20a%20name".to_owned(),
        // A cursor from another search.
        "q=se&cursor=zed".to_owned(),
        "q=se&limit=0".to_owned(),
    ] {
        app.get(&format!("/api/v1/users?{query}"), Some(&token))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    }
    app.get("/api/v1/users?q=se", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing_token");
}

async fn the_search_is_served_by_an_index(backend: Backend) {
    use confab_auth::store::{Store, SEARCH_POSTGRES, SEARCH_SQLITE};
    let app = TestApp::new(backend).await;
    let plan: Vec<String> = match app.state.store() {
        Store::Postgres(pool) => {
            let mut conn = pool.acquire().await.expect("connection");
            // The table is tiny: without this the planner rightly prefers reading it whole.
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut *conn)
                .await
                .expect("set");
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {SEARCH_POSTGRES}")))
                .bind("al")
                .bind("al~")
                .bind("")
                .bind(21_i64)
                .fetch_all(&mut *conn)
                .await
                .expect("explain")
        }
        Store::Sqlite(pool) => {
            let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "EXPLAIN QUERY PLAN {SEARCH_SQLITE}"
            )))
            .bind("al")
            .bind("al~")
            .bind("")
            .bind(21_i64)
            .fetch_all(pool)
            .await
            .expect("explain");
            rows.into_iter().map(|row| row.3).collect()
        }
    };
    let plan = plan.join("\n");
    let expected = match backend {
        Backend::Postgres => "users_username_bytes",
        Backend::Sqlite => "USING INDEX sqlite_autoindex_users_",
    };
    assert!(plan.contains(expected), "{plan}");
    assert!(
        !plan.contains("Seq Scan") && !plan.contains("SCAN users"),
        "{plan}"
    );
}

/// A burst beyond the hashing threads and their queue is refused at once with 503 and
/// `Retry-After`, not queued without bound; the sign-ups that got a thread succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_beyond_the_hashing_queue_are_503_busy_with_retry_after() {
    let app = std::sync::Arc::new(
        TestApp::with_config(Backend::Sqlite, |config| {
            config.passwords.max_concurrent_hashes = 1;
            config.passwords.max_queued_hashes = 1;
            config.throttle.signups_per_address = 1_000;
        })
        .await,
    );
    let signups = (0..12).map(|i| {
        let app = std::sync::Arc::clone(&app);
        async move { app.signup(&format!("burst{i}"), PASSWORD).await }
    });
    let responses = futures::future::join_all(signups).await;
    let created = responses
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let busy: Vec<_> = responses
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert_eq!(created + busy.len(), responses.len());
    assert!(created >= 1, "the sign-ups that got a thread succeed");
    assert!(
        !busy.is_empty(),
        "one thread and one place in the queue for 12 at once"
    );
    for response in busy {
        assert_eq!(response.json()["error"], "busy");
        assert_eq!(response.headers["retry-after"], "1");
    }
}

async fn a_search_only_directory_answers_prefixes_of_the_minimum_length_only(backend: Backend) {
    let app = TestApp::with_config(backend, |config| {
        config.directory.mode = confab_auth::DirectoryMode::Search;
        config.directory.min_query_chars = 3;
    })
    .await;
    let token = app.token("alina").await;
    app.create_user("alistair").await;
    app.create_user("bruno").await;
    for query in ["", "?limit=100", "?q=al", "?q=%20%20al"] {
        let refused = app
            .get(&format!("/api/v1/users{query}"), Some(&token))
            .await;
        let message = refused.assert_error(StatusCode::BAD_REQUEST, "query_too_short");
        assert!(message.contains("at least 3 characters"), "{message}");
    }
    let found = app.get("/api/v1/users?q=ali", Some(&token)).await.json();
    let names: Vec<&str> = found["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(
        names,
        ["alina", "alistair"],
        "only the matches, in name order"
    );
}
