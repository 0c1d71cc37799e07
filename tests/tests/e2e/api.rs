//! The REST API skeleton: health, authentication, JSON errors, and the hat/rat tables.

use reqwest::Method;

use crate::harness::*;

#[tokio::test]
async fn health_needs_no_auth_and_everything_else_does() {
    let app = Appliance::start("").await;
    let resp = reqwest::get(app.url("/api/v1/health")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    let resp = reqwest::get(app.url("/api/v1/rat")).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Basic realm=\"Rampart\""
    );
    let (status, body) = app
        .api_as("admin", "wrong", Method::GET, "/rat", None)
        .await;
    assert_eq!(status, 401);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("authentication required")
    );
    let (status, body) = app.api(Method::GET, "/no-such-thing", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no such resource: /api/v1/no-such-thing");
}

#[tokio::test]
async fn hat_and_rat_round_trip_and_bad_input() {
    let app = Appliance::start("").await;
    let (status, hat) = app.api(Method::GET, "/hat", None).await;
    assert_eq!(status, 200);
    assert_eq!(hat[0]["name"], "LOOPBACK");
    assert_eq!(hat[0]["policy"], "ACCEPT");
    let (status, rat) = app.api(Method::GET, "/rat", None).await;
    assert_eq!((status, rat), (200, serde_json::json!([])));

    let new_rat = serde_json::json!([{"domain": "example.com", "action": "accept"}, {"domain": ".example.com", "action": "accept"}]);
    let (status, body) = app.api(Method::PUT, "/rat", Some(new_rat.clone())).await;
    assert_eq!((status, body), (200, new_rat.clone()));
    assert_eq!(app.api(Method::GET, "/rat", None).await.1, new_rat);

    let cases = [
        (
            serde_json::json!([{"domain": "bad domain", "action": "accept"}]),
            "rat[0]: domain \"bad domain\"",
        ),
        (
            serde_json::json!([{"domain": "x.test", "action": "maybe"}]),
            "rat[0].action: unknown variant `maybe`",
        ),
        (
            serde_json::json!([{"domain": "x.test", "action": "accept", "extra": 1}]),
            "unknown field `extra`",
        ),
        (
            serde_json::json!({"domain": "x.test"}),
            "rat: invalid type: map, expected a sequence",
        ),
    ];
    for (body, want) in cases {
        let (status, resp) = app.api(Method::PUT, "/rat", Some(body)).await;
        assert_eq!(status, 400);
        let err = resp["error"].as_str().unwrap();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
    let (status, resp) = app
        .api(
            Method::PUT,
            "/hat",
            Some(serde_json::json!([{"name": "X", "hosts": ["10.0.0.0/40"], "policy": "ACCEPT"}])),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        resp["error"]
            .as_str()
            .unwrap()
            .contains("hat[0] (X): host \"10.0.0.0/40\"")
    );
    // Each problem is also given keyed by the entry (or field) it is about.
    let problems = resp["problems"].as_array().cloned().unwrap_or_default();
    assert_eq!(problems.len(), 1, "{resp}");
    assert_eq!(problems[0]["at"], "hat[0] (X)");
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("host \"10.0.0.0/40\" is not an IP address"),
        "{resp}"
    );
    let (status, resp) = app
        .api(
            Method::PUT,
            "/rat",
            Some(serde_json::json!([{"domain": "x.test", "action": "maybe"}])),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(resp["problems"][0]["at"], "rat[0].action", "{resp}");

    // Malformed JSON.
    let resp = reqwest::Client::new()
        .put(app.url("/api/v1/rat"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("content-type", "application/json")
        .body("[{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body")
    );
    // Nothing changed by the refused requests.
    assert_eq!(app.api(Method::GET, "/rat", None).await.1, new_rat);
}

/// Read-modify-write, as scripts do it: every resource takes back on PUT exactly what its GET
/// returned, read-only fields included (SPEC §7), and is unchanged by it.
#[tokio::test]
async fn every_resource_takes_back_what_it_returns() {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    for path in [
        "/hat",
        "/rat",
        "/smtp-routes",
        "/destination-controls",
        "/bounce-profile",
        "/tdc",
        "/policies/incoming/DEFAULT",
        "/policies/outgoing/DEFAULT",
    ] {
        let (status, before) = app.api(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {before}");
        let (status, body) = app.api(Method::PUT, path, Some(before.clone())).await;
        assert_eq!(status, 200, "PUT {path} with what GET returned: {body}");
        let (_, after) = app.api(Method::GET, path, None).await;
        assert_eq!(after, before, "{path} changed");
    }
    let (_, users) = app.api(Method::GET, "/users", None).await;
    let admin = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "admin")
        .cloned()
        .unwrap();
    let (status, body) = app
        .api(Method::PUT, "/users/admin", Some(admin.clone()))
        .await;
    assert_eq!(status, 200, "PUT /users/admin with its list entry: {body}");
    let (_, users) = app.api(Method::GET, "/users", None).await;
    assert!(users.as_array().unwrap().contains(&admin), "{users}");
}
