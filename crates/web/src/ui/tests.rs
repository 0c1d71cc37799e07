//! Handler tests: every page and form of the UI through the real router and a real SQLite store,
//! with valid input, each kind of invalid input, a missing CSRF token and the wrong role.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use rampart_settings::Settings;
use rampart_store::{Role, Store, User};
use tower::ServiceExt;

use crate::{AppState, WebOptions, router};

/// An argon2 hash with the smallest parameters: verifying it costs microseconds, so the many
/// logins of these tests do not hog the CPU that the end-to-end tests beside them need. The
/// parameters travel in the PHC string, so the appliance's code verifies it as any other.
fn cheap_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

struct Ui {
    _dir: tempfile::TempDir,
    state: AppState,
}

struct Answer {
    status: StatusCode,
    location: String,
    cookie: String,
    body: String,
}

impl Ui {
    async fn new() -> Ui {
        Ui::with(WebOptions::default()).await
    }

    async fn with(mut options: WebOptions) -> Ui {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mail_logs");
        std::fs::write(
            &log,
            "Sat Nov 28 06:24:50 2026 Info: Start MID 7 ICID 3\n\
             Sat Nov 28 06:24:51 2026 Info: TDC: MID 7 successfully delivered for scanning with Cisco Secure Email Threat Defense\n\
             Sat Nov 28 06:24:52 2026 Info: MID 8 Subject '<b>hi</b>'\n",
        )
        .unwrap();
        options.mail_log = Some(log);
        let store = Store::open(&dir.path().join("rampart.db")).await.unwrap();
        for (name, role) in [
            ("admin", Role::Admin),
            ("oper", Role::Operator),
            ("viewer", Role::ReadOnly),
        ] {
            store
                .put_user(&User {
                    name: name.into(),
                    password_hash: cheap_hash("password1"),
                    role,
                })
                .await
                .unwrap();
        }
        let snapshot = Settings::default().compile().unwrap();
        let shared = Arc::new(ArcSwap::from_pointee(snapshot));
        Ui {
            _dir: dir,
            state: AppState::new(store, shared, options),
        }
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let r = router(self.state.clone()).oneshot(req).await.unwrap();
        let header = |name| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let (location, cookie) = (header(header::LOCATION), header(header::SET_COOKIE));
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
        Answer {
            status,
            location,
            cookie,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, session: &Session, path: &str) -> Answer {
        self.send(
            Request::get(path)
                .header(header::COOKIE, &session.cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn post_raw(&self, cookie: &str, path: &str, form: &[(&str, &str)]) -> Answer {
        self.send(
            Request::builder()
                .method(Method::POST)
                .uri(path)
                .header(header::COOKIE, cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(serde_urlencoded::to_string(form).unwrap()))
                .unwrap(),
        )
        .await
    }

    /// Posts a form with the session's CSRF token.
    async fn post(&self, session: &Session, path: &str, form: &[(&str, &str)]) -> Answer {
        let mut fields = vec![("csrf", session.csrf.as_str())];
        fields.extend_from_slice(form);
        self.post_raw(&session.cookie, path, &fields).await
    }

    async fn login(&self, user: &str) -> Session {
        let a = self
            .post_raw(
                "",
                "/login",
                &[("username", user), ("password", "password1"), ("next", "/")],
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let cookie = a.cookie.split(';').next().unwrap().to_owned();
        let mut session = Session {
            cookie,
            csrf: String::new(),
        };
        let page = self.get(&session, "/monitor/status").await;
        session.csrf = page
            .body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_owned();
        session
    }

    fn live(&self) -> Settings {
        self.state.settings.load().settings().clone()
    }
}

struct Session {
    cookie: String,
    csrf: String,
}

/// Every page of the UI, as the menus link them.
const PAGES: &[&str] = &[
    "/monitor/overview",
    "/monitor/overview?range=hour",
    "/monitor/overview?range=week",
    "/monitor/overview?range=month",
    "/monitor/status",
    "/monitor/delivery",
    "/monitor/tracking",
    "/monitor/quarantine",
    "/monitor/mail-logs",
    "/mail-policies/incoming",
    "/mail-policies/outgoing",
    "/mail-policies/hat",
    "/mail-policies/rat",
    "/mail-policies/incoming/DEFAULT/tdc",
    "/mail-policies/incoming/DEFAULT/email-authentication",
    "/mail-policies/outgoing/DEFAULT/content-filters",
    "/mail-policies/incoming/DEFAULT/antispam",
    "/mail-policies/outgoing/DEFAULT/antivirus",
    "/security/antispam",
    "/security/antivirus",
    "/security/tdc",
    "/security/tdc/ledger",
    "/network/smtp-routes",
    "/network/destination-controls",
    "/network/bounce-profiles",
    "/commit",
    "/admin/audit",
    "/admin/password",
];

#[tokio::test]
async fn pages_need_a_session_but_login_and_assets_do_not() {
    let ui = Ui::new().await;
    let nobody = Session {
        cookie: String::new(),
        csrf: String::new(),
    };
    for page in PAGES {
        let a = ui.get(&nobody, page).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{page}");
        assert!(
            a.location.starts_with("/login?next=%2F"),
            "{page}: {}",
            a.location
        );
    }
    let forged = Session {
        cookie: "rampart_session=forged".into(),
        csrf: String::new(),
    };
    assert_eq!(
        ui.get(&forged, "/monitor/status").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(ui.get(&nobody, "/login").await.status, StatusCode::OK);
    let css = ui.get(&nobody, "/static/rampart.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.body.contains("font"));
    assert_eq!(
        ui.get(&nobody, "/api/v1/health").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_page_renders_for_every_role_with_security_headers() {
    let ui = Ui::new().await;
    for user in ["admin", "oper", "viewer"] {
        let s = ui.login(user).await;
        for page in PAGES {
            let r = router(ui.state.clone())
                .oneshot(
                    Request::get(*page)
                        .header(header::COOKIE, &s.cookie)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{user} {page}");
            let h = r.headers();
            let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(h[header::CACHE_CONTROL], "no-store");
            let body = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
            let body = String::from_utf8_lossy(&body);
            assert!(
                body.contains("Log Out") && body.contains(user),
                "{user} {page}"
            );
            assert!(!body.contains("<script"), "{page} has a script");
            assert!(!body.contains("style=\""), "{page} has an inline style");
        }
    }
    let s = ui.login("admin").await;
    assert_eq!(
        ui.get(&s, "/no/such/page").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ui.get(&s, "/mail-policies/sideways").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ui.get(&s, "/monitor/tracking/abc").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ui.get(&s, "/monitor/tracking/999").await.status,
        StatusCode::NOT_FOUND
    );
}

/// The values of `id="…"` attributes in a page that occur more than once.
fn duplicate_ids(body: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut twice = Vec::new();
    for part in body.split(" id=\"").skip(1) {
        let id = part.split('"').next().unwrap_or_default().to_owned();
        if !seen.insert(id.clone()) {
            twice.push(id);
        }
    }
    twice
}

#[tokio::test]
async fn navigation_marks_the_page_skips_to_content_and_keeps_ids_unique() {
    let ui = Ui::new().await;
    for user in ["admin", "oper", "viewer"] {
        let s = ui.login(user).await;
        for page in PAGES {
            let a = ui.get(&s, page).await;
            assert_eq!(a.status, StatusCode::OK, "{user} {page}");
            assert_eq!(
                duplicate_ids(&a.body),
                Vec::<String>::new(),
                "{user} {page}"
            );
            assert!(
                a.body.contains("<a class=\"skip\" href=\"#content\">")
                    && a.body.contains("<main id=\"content\">"),
                "{page}: no skip link"
            );
            // One sub-menu entry is marked: the page's own, or the one it is under.
            let current: Vec<&str> = a
                .body
                .split(" class=\"current\" aria-current=\"page\">")
                .skip(1)
                .map(|rest| rest.split('<').next().unwrap_or_default())
                .collect();
            assert_eq!(current.len(), 1, "{user} {page}: {current:?}");
        }
    }
    let s = ui.login("admin").await;
    let marked = |path: &'static str, title: &'static str| {
        let s = &s;
        let ui = &ui;
        async move {
            let body = ui.get(s, path).await.body;
            assert!(
                body.contains(&format!("aria-current=\"page\">{title}</a>")),
                "{path} should mark {title}"
            );
        }
    };
    marked(
        "/mail-policies/incoming/DEFAULT/tdc",
        "Incoming Mail Policies",
    )
    .await;
    marked("/security/tdc/ledger", "Threat Defense Connector Settings").await;
    marked("/monitor/mail-logs", "Mail Logs").await;
    marked("/admin/users", "Users").await;
}

#[tokio::test]
async fn refused_pages_keep_the_menus_and_read_only_pages_look_read_only() {
    let ui = Ui::new().await;
    for user in ["viewer", "oper"] {
        let s = ui.login(user).await;
        let status = ui.get(&s, "/monitor/status").await.body;
        // System Administration leads to a page this role may open, and offers no Users page.
        assert!(
            status.contains("href=\"/admin/password\">System Administration</a>"),
            "{user}"
        );
        let admin = ui.get(&s, "/admin/password").await;
        assert_eq!(admin.status, StatusCode::OK);
        assert!(!admin.body.contains("href=\"/admin/users\""), "{user}");
        assert!(!admin.body.contains("id=\"commit-link\""), "{user}");
        // A page the role may not open still has the menus, so the user is not stranded.
        let refused = ui.get(&s, "/admin/users").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(
            refused.body.contains("Log Out")
                && refused.body.contains("aria-label=\"Main menu\"")
                && refused.body.contains("href=\"/admin/audit\">Audit Log</a>"),
            "{user}: {}",
            refused.body
        );
        assert!(refused.body.contains("this needs the Administrator role"));
        // Settings pages they may read show no control that looks editable.
        for page in [
            "/network/bounce-profiles",
            "/mail-policies/incoming/DEFAULT/tdc",
            "/mail-policies/incoming/DEFAULT/email-authentication",
            "/mail-policies/incoming/DEFAULT/antispam",
        ] {
            let body = ui.get(&s, page).await.body;
            assert!(
                body.contains("<fieldset class=\"plain\" disabled>")
                    && body.contains("id=\"read-only\""),
                "{user} {page}"
            );
        }
    }
    let s = ui.login("admin").await;
    let body = ui.get(&s, "/network/bounce-profiles").await.body;
    assert!(body.contains("<fieldset class=\"plain\">") && !body.contains("id=\"read-only\""));
    assert!(body.contains("href=\"/admin/users\">System Administration</a>"));
    // An error page for a known user has the menus of the area it is in.
    let missing = ui.get(&s, "/monitor/tracking/999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing
            .body
            .contains("href=\"/monitor/mail-logs\">Mail Logs</a>")
    );
}

#[tokio::test]
async fn login_cookie_flags_redirects_and_throttling() {
    let ui = Ui::new().await;
    let a = ui
        .post_raw(
            "",
            "/login",
            &[
                ("username", "admin"),
                ("password", "password1"),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location, "/monitor/status", "no open redirect");
    for next in [
        "/\t/evil.example/",
        "/\r\nSet-Cookie: x=1",
        "https://evil.example/",
        "/\\evil",
    ] {
        let a = ui
            .post_raw(
                "",
                "/login",
                &[
                    ("username", "admin"),
                    ("password", "password1"),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(a.location, "/monitor/status", "{next:?}");
    }
    let a = ui
        .post_raw(
            "",
            "/login",
            &[
                ("username", "admin"),
                ("password", "password1"),
                ("next", "/mail-policies/rat?x=1"),
            ],
        )
        .await;
    assert_eq!(a.location, "/mail-policies/rat?x=1", "a local page is kept");
    assert!(a.cookie.contains("HttpOnly") && a.cookie.contains("SameSite=Strict"));
    assert!(!a.cookie.contains("Secure"), "plain HTTP on loopback");

    let wrong = [("username", "admin"), ("password", "nope"), ("next", "/")];
    let a = ui.post_raw("", "/login", &wrong).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("Invalid username or password.") && a.cookie.is_empty());
    for _ in 1..5 {
        ui.post_raw("", "/login", &wrong).await;
    }
    // Locked out now, even with the right password.
    let a = ui
        .post_raw(
            "",
            "/login",
            &[("username", "admin"), ("password", "password1")],
        )
        .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(a.body.contains("Too many failed logins"));
    // Other accounts are not locked.
    ui.login("oper").await;

    let secure = Ui::with(WebOptions {
        https: true,
        ..WebOptions::default()
    })
    .await;
    let a = secure
        .post_raw(
            "",
            "/login",
            &[("username", "admin"), ("password", "password1")],
        )
        .await;
    assert!(a.cookie.contains("; Secure"));
    let r = router(secure.state.clone())
        .oneshot(Request::get("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        r.headers()[header::STRICT_TRANSPORT_SECURITY],
        "max-age=31536000"
    );
    let r = router(ui.state.clone())
        .oneshot(Request::get("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(r.headers().get(header::STRICT_TRANSPORT_SECURITY).is_none());
}

#[tokio::test]
async fn logout_ends_the_session() {
    let ui = Ui::new().await;
    let s = ui.login("viewer").await;
    assert_eq!(
        ui.post_raw(&s.cookie, "/logout", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let a = ui.post(&s, "/logout", &[]).await;
    assert_eq!(
        (a.status, a.location.as_str()),
        (StatusCode::SEE_OTHER, "/login")
    );
    assert_eq!(
        ui.get(&s, "/monitor/status").await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn forms_without_the_csrf_token_change_nothing() {
    let ui = Ui::new().await;
    let s = ui.login("admin").await;
    let form = [
        ("enabled", "on"),
        ("intake_address", "j@beta.cmd.cisco.com"),
    ];
    for fields in [form.to_vec(), [&form[..], &[("csrf", "wrong")]].concat()] {
        let a = ui.post_raw(&s.cookie, "/security/tdc/edit", &fields).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert!(a.body.contains("security token"));
    }
    for path in [
        "/mail-policies/rat",
        "/mail-policies/incoming/add",
        "/commit",
        "/admin/users",
        "/monitor/delivery/retry",
    ] {
        assert_eq!(
            ui.post_raw(&s.cookie, path, &[]).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    assert!(
        ui.state
            .store
            .pending_changes("admin")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn tdc_settings_stage_validate_and_commit_with_an_audit_record() {
    let ui = Ui::new().await;
    let s = ui.login("admin").await;
    let view = ui.get(&s, "/security/tdc").await;
    assert!(view.body.contains("Disabled") && view.body.contains("Edit Settings"));

    // Enabled without an address: the form again, the error beside the field.
    let a = ui
        .post(
            &s,
            "/security/tdc/edit",
            &[("enabled", "on"), ("intake_address", "")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.body.contains("field-error") && a.body.contains("required when the connector is enabled")
    );
    assert!(a.body.contains("checked"), "the checkbox is kept");
    // A bad address is kept in the field, escaped.
    let a = ui
        .post(
            &s,
            "/security/tdc/edit",
            &[("enabled", "on"), ("intake_address", "not an <address>")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.body.contains("value=\"not an &#60;address&#62;\"")
            || a.body.contains("value=\"not an &lt;address&gt;\"")
    );
    assert!(!a.body.contains("<address>"));
    assert!(
        ui.state
            .store
            .pending_changes("admin")
            .await
            .unwrap()
            .is_empty()
    );

    let a = ui
        .post(
            &s,
            "/security/tdc/edit",
            &[
                ("enabled", "on"),
                ("intake_address", "j@beta.cmd.cisco.com"),
            ],
        )
        .await;
    assert_eq!(
        (a.status, a.location.as_str()),
        (StatusCode::SEE_OTHER, "/security/tdc?done=staged")
    );
    // Pending: this admin sees it, the appliance does not run it yet.
    assert!(!ui.live().tdc.enabled);
    let view = ui.get(&s, "/security/tdc?done=staged").await;
    assert!(view.body.contains("Commit Changes (1)") && view.body.contains("j@beta.cmd.cisco.com"));
    assert!(view.body.contains("Your changes are pending"));
    let other = ui.login("oper").await;
    assert!(
        !ui.get(&other, "/security/tdc")
            .await
            .body
            .contains("j@beta.cmd.cisco.com")
    );

    let page = ui.get(&s, "/commit").await;
    assert!(page.body.contains(
        "Threat Defense Connector: enabled, Message Intake Address j@beta.cmd.cisco.com"
    ));
    let a = ui
        .post(&s, "/commit", &[("comment", "CHG-1 <journal>")])
        .await;
    assert_eq!(a.location, "/commit?done=committed");
    assert!(ui.live().tdc.enabled);
    assert_eq!(ui.live().tdc.intake_address, "j@beta.cmd.cisco.com");
    assert_eq!(
        ui.state.store.load_settings().await.unwrap().tdc,
        ui.live().tdc
    );
    let audit = ui.get(&s, "/admin/audit").await;
    assert!(
        audit.body.contains("CHG-1 &#60;journal&#62;")
            || audit.body.contains("CHG-1 &lt;journal&gt;")
    );
    let log = ui.state.store.audit_log(10).await.unwrap();
    assert_eq!(log[0].audit.user, "admin");
    assert_eq!(log[0].audit.source, "ui");
    assert!(
        ui.get(&s, "/commit")
            .await
            .body
            .contains("no uncommitted changes")
    );
}

#[tokio::test]
async fn abandon_discards_pending_changes() {
    let ui = Ui::new().await;
    let s = ui.login("admin").await;
    ui.post(
        &s,
        "/mail-policies/rat",
        &[
            ("op", "add"),
            ("domain", "example.com"),
            ("action", "accept"),
        ],
    )
    .await;
    assert!(
        ui.get(&s, "/mail-policies/rat")
            .await
            .body
            .contains("example.com")
    );
    let a = ui.post(&s, "/commit/abandon", &[]).await;
    assert_eq!(a.location, "/commit?done=abandoned");
    assert!(
        !ui.get(&s, "/mail-policies/rat")
            .await
            .body
            .contains("<td>example.com</td>")
    );
    assert!(ui.live().rat.is_empty());
    assert!(ui.state.store.audit_log(10).await.unwrap().is_empty());
}

/// Two administrators staging changes: the second commit to a table the first one changed
/// meanwhile is refused rather than overwriting it; a commit to another table goes through and
/// keeps the first one's change.
#[tokio::test]
async fn a_commit_never_overwrites_another_administrators_commit() {
    let ui = Ui::new().await;
    ui.state
        .store
        .put_user(&User {
            name: "admin2".into(),
            password_hash: cheap_hash("password1"),
            role: Role::Admin,
        })
        .await
        .unwrap();
    let (a, b) = (ui.login("admin").await, ui.login("admin2").await);
    let add_rat = |domain: &'static str| [("op", "add"), ("domain", domain), ("action", "accept")];
    ui.post(&a, "/mail-policies/rat", &add_rat("a.example"))
        .await;
    ui.post(&b, "/mail-policies/rat", &add_rat("b.example"))
        .await;
    let r = ui.post(&a, "/commit", &[("comment", "")]).await;
    assert_eq!(r.location, "/commit?done=committed");
    let r = ui.post(&b, "/commit", &[("comment", "")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body
            .contains("The Recipient Access Table was changed by someone else"),
        "{}",
        r.body
    );
    let domains = |ui: &Ui| {
        ui.live()
            .rat
            .iter()
            .map(|e| e.domain.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(domains(&ui), ["a.example"]);
    // Another table meanwhile: no conflict, and the other's RAT change stays.
    ui.post(&b, "/commit/abandon", &[]).await;
    ui.post(
        &b,
        "/network/smtp-routes",
        &[
            ("op", "add"),
            ("domain", "b.example"),
            ("hosts", "10.0.0.5:25"),
        ],
    )
    .await;
    ui.post(&a, "/mail-policies/rat", &add_rat("z.example"))
        .await;
    assert_eq!(
        ui.post(&a, "/commit", &[("comment", "")]).await.location,
        "/commit?done=committed"
    );
    assert_eq!(
        ui.post(&b, "/commit", &[("comment", "")]).await.location,
        "/commit?done=committed"
    );
    assert_eq!(domains(&ui), ["a.example", "z.example"]);
    assert_eq!(ui.live().smtp_routes.len(), 1);
}

#[tokio::test]
async fn read_only_and_operator_users_cannot_change_configuration() {
    let ui = Ui::new().await;
    for user in ["viewer", "oper"] {
        let s = ui.login(user).await;
        let page = ui.get(&s, "/mail-policies/incoming").await;
        assert!(
            !page.body.contains("Add Policy"),
            "{user} is offered no edits"
        );
        for (path, form) in [
            (
                "/security/tdc/edit",
                vec![("enabled", "on"), ("intake_address", "j@x.example")],
            ),
            (
                "/mail-policies/incoming/add",
                vec![("name", "p"), ("recipients", "@x.example")],
            ),
            (
                "/mail-policies/incoming/DEFAULT/tdc",
                vec![("mode", "global")],
            ),
            (
                "/mail-policies/rat",
                vec![("op", "add"), ("domain", "x.example")],
            ),
            (
                "/mail-policies/hat",
                vec![("op", "add"), ("name", "G"), ("hosts", "10.0.0.0/8")],
            ),
            (
                "/network/smtp-routes",
                vec![("op", "add"), ("domain", "x.example"), ("hosts", "h")],
            ),
            ("/network/bounce-profiles", vec![("max_retries", "1")]),
            (
                "/mail-policies/incoming/DEFAULT/antispam",
                vec![
                    ("mode", "disabled"),
                    ("positive_action", "drop"),
                    ("suspect_action", "deliver"),
                ],
            ),
            ("/commit", vec![]),
            (
                "/admin/users",
                vec![
                    ("op", "save"),
                    ("name", "eve"),
                    ("password", "password1"),
                    ("role", "admin"),
                ],
            ),
        ] {
            let a = ui.post(&s, path, &form).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{user} {path}");
            assert!(a.body.contains("role"), "{user} {path}");
        }
        assert_eq!(
            ui.get(&s, "/security/tdc/edit").await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            ui.get(&s, "/admin/users").await.status,
            StatusCode::FORBIDDEN
        );
        assert!(
            ui.state
                .store
                .pending_changes(user)
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert!(ui.state.store.user("eve").await.unwrap().is_none());
    // Operators operate; read-only users do not.
    let viewer = ui.login("viewer").await;
    assert_eq!(
        ui.post(&viewer, "/monitor/delivery/retry", &[("host", "")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ui.post(&viewer, "/monitor/quarantine/1/release", &[])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ui.post(&viewer, "/security/tdc/resend", &[("hours", "24")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let oper = ui.login("oper").await;
    let a = ui
        .post(&oper, "/monitor/delivery/retry", &[("host", "example.com")])
        .await;
    assert_eq!(a.location, "/monitor/delivery?done=retried");
    // Resend is an operator's action too; with the connector off it says why it cannot.
    let a = ui
        .post(&oper, "/security/tdc/resend", &[("hours", "24")])
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("disabled"), "{}", a.body);
    assert_eq!(
        ui.post(&oper, "/monitor/quarantine/1/release", &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn policies_add_edit_move_delete_and_their_errors() {
    let ui = Ui::new().await;
    let s = ui.login("admin").await;
    let add = "/mail-policies/incoming/add";
    let a = ui
        .post(&s, add, &[("name", ""), ("recipients", "@x.example")])
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("Enter a policy name."));
    let a = ui
        .post(
            &s,
            add,
            &[
                ("name", "finance"),
                ("recipients", "bad pattern\n@ok.example"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("is not a pattern") && a.body.contains("@ok.example"));
    let a = ui
        .post(
            &s,
            add,
            &[("name", "finance"), ("senders", ""), ("recipients", "")],
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no pattern at all"
    );
    assert!(a.body.contains("at least one sender or recipient pattern"));
    let a = ui
        .post(
            &s,
            add,
            &[("name", "finance"), ("recipients", "@finance.example")],
        )
        .await;
    assert_eq!(a.location, "/mail-policies/incoming?done=staged");
    let a = ui
        .post(
            &s,
            add,
            &[("name", "FINANCE"), ("recipients", "@f.example")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("exists already"));
    ui.post(
        &s,
        add,
        &[("name", "sales"), ("senders", "@.partner.example")],
    )
    .await;
    let table = ui.get(&s, "/mail-policies/incoming").await.body;
    let order = |t: &str| {
        (
            t.find("data-policy=\"finance\"").unwrap(),
            t.find("data-policy=\"sales\"").unwrap(),
        )
    };
    let (f, sa) = order(&table);
    assert!(
        f < sa && table.contains("(use default)") && table.contains("Threat Defense Connector")
    );
    ui.post(&s, "/mail-policies/incoming/sales/move", &[("to", "up")])
        .await;
    let (f, sa) = order(&ui.get(&s, "/mail-policies/incoming").await.body);
    assert!(sa < f, "sales moved above finance");
    let a = ui
        .post(&s, "/mail-policies/incoming/sales/move", &[("to", "up")])
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = ui
        .post(
            &s,
            "/mail-policies/incoming/sales/move",
            &[("to", "sideways")],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    // Edit: rename, patterns kept in the form.
    let form = ui.get(&s, "/mail-policies/incoming/finance/edit").await;
    assert!(form.body.contains("@finance.example"));
    let a = ui
        .post(
            &s,
            "/mail-policies/incoming/finance/edit",
            &[("name", "money"), ("recipients", "@finance.example")],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        ui.get(&s, "/mail-policies/incoming/finance/edit")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let a = ui
        .post(&s, "/mail-policies/incoming/DEFAULT/delete", &[])
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("DEFAULT policy cannot be deleted"));
    ui.post(&s, "/mail-policies/incoming/sales/delete", &[])
        .await;
    ui.post(&s, "/commit", &[("comment", "")]).await;
    let names: Vec<String> = ui
        .live()
        .incoming_policies
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["money", "DEFAULT"]);
}

#[tokio::test]
async fn per_policy_tdc_choice() {
    let ui = Ui::new().await;
    let s = ui.login("admin").await;
    ui.post(
        &s,
        "/security/tdc/edit",
        &[
            ("enabled", "on"),
            ("intake_address", "global@beta.cmd.cisco.com"),
        ],
    )
    .await;
    ui.post(
        &s,
        "/mail-policies/incoming/add",
        &[("name", "finance"), ("recipients", "@finance.example")],
    )
    .await;
    // DEFAULT has no "Use Default Settings".
    let page = ui.get(&s, "/mail-policies/incoming/DEFAULT/tdc").await;
    assert!(
        !page.body.contains("Use Default Settings")
            && page
                .body
                .contains("Use Global Settings (global@beta.cmd.cisco.com)")
    );
    let a = ui
        .post(
            &s,
            "/mail-policies/incoming/DEFAULT/tdc",
            &[("mode", "default")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = ui.get(&s, "/mail-policies/incoming/finance/tdc").await;
    assert!(
        page.body.contains("Use Default Settings")
            && page
                .body
                .contains("value=\"default\" id=\"mode-default\" checked")
    );
    let tdc = "/mail-policies/incoming/finance/tdc";
    let a = ui
        .post(&s, tdc, &[("mode", "custom"), ("intake_address", "")])
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("Enter the custom Message Intake Address."));
    let a = ui
        .post(&s, tdc, &[("mode", "custom"), ("intake_address", "nope")])
        .await;
    assert!(a.body.contains("is not a valid address") && a.body.contains("value=\"nope\""));
    let a = ui.post(&s, tdc, &[("mode", "maybe")]).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let a = ui
        .post(
            &s,
            tdc,
            &[
                ("mode", "custom"),
                ("intake_address", "fin@beta.cmd.cisco.com"),
            ],
        )
        .await;
    assert_eq!(a.location, "/mail-policies/incoming?done=staged");
    let a = ui
        .post(
            &s,
            "/mail-policies/outgoing/DEFAULT/tdc",
            &[("mode", "global")],
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::NOT_FOUND,
        "outgoing mail is never journaled"
    );
    ui.post(&s, "/commit", &[("comment", "journal finance")])
        .await;
    let table = ui.get(&s, "/mail-policies/incoming").await.body;
    let row = table.split("data-policy=\"finance\"").nth(1).unwrap();
    assert!(row.split("</tr>").next().unwrap().contains(">Enabled</a>"));
    let live = ui.state.settings.load();
    assert_eq!(
        live.journal_address(0).as_deref(),
        Some("fin@beta.cmd.cisco.com")
    );
    assert_eq!(live.journal_address(1), None, "DEFAULT stays No");
}

#[tokio::test]
async fn email_authentication_and_content_filter_pages() {
    let ui = Ui::new().await;
    let s = ui.login("admin").await;
    let auth = "/mail-policies/incoming/DEFAULT/email-authentication";
    let a = ui
        .post(
            &s,
            auth,
            &[("enabled", "on"), ("dmarc_action", "sometimes")],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    ui.post(&s, auth, &[("enabled", "on"), ("dmarc_action", "reject")])
        .await;
    let filters = "/mail-policies/incoming/DEFAULT/content-filters";
    let a = ui.post(&s, filters, &[("filters", "[{not json")]).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("not valid JSON") && a.body.contains("[{not json"));
    let a = ui
        .post(
            &s,
            filters,
            &[(
                "filters",
                r#"[{"name": "x", "conditions": [{"type": "colour"}], "actions": []}]"#,
            )],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("at `[0].conditions[0]"), "{}", a.body);
    let a = ui.post(&s, filters, &[("filters", r#"[{"name": "x", "conditions": [{"type": "subject", "regex": "("}], "actions": [{"type": "drop"}]}]"#)]).await;
    assert_eq!(
        a.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a bad regex is refused"
    );
    let good = r#"[{"name": "no-exe", "conditions": [{"type": "attachment_name", "regex": "\\.exe$"}], "actions": [{"type": "quarantine"}]}]"#;
    assert_eq!(
        ui.post(&s, filters, &[("filters", good)]).await.status,
        StatusCode::SEE_OTHER
    );
    ui.post(&s, "/commit", &[]).await;
    let p = ui.live().incoming_policies.pop().unwrap();
    assert!(p.email_authentication.enabled);
    assert_eq!(p.content_filters[0].name, "no-exe");
    let table = ui.get(&s, "/mail-policies/incoming").await.body;
    assert!(table.contains("DMARC: reject failures") && table.contains("no-exe"));
}

#[tokio::test]
async fn table_pages_add_delete_and_refuse_bad_rows() {
    let ui = Ui::new().await;
    let s = ui.login("admin").await;
    // HAT: a new group goes above the final ALL group.
    let a = ui
        .post(
            &s,
            "/mail-policies/hat",
            &[
                ("op", "add"),
                ("name", "RELAYLIST"),
                ("hosts", "10.1.0.0/16"),
                ("policy", "RELAY"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let a = ui
        .post(
            &s,
            "/mail-policies/hat",
            &[
                ("op", "add"),
                ("name", "BAD"),
                ("hosts", "10.1.0.0/99"),
                ("policy", "ACCEPT"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("10.1.0.0/99") && a.body.contains("value=\"BAD\""));
    let a = ui
        .post(
            &s,
            "/mail-policies/hat",
            &[("op", "add"), ("name", ""), ("hosts", "")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let a = ui
        .post(
            &s,
            "/mail-policies/hat",
            &[("op", "delete"), ("index", "99")],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // RAT
    assert_eq!(
        ui.post(
            &s,
            "/mail-policies/rat",
            &[
                ("op", "add"),
                ("domain", "example.com"),
                ("action", "accept")
            ]
        )
        .await
        .status,
        StatusCode::SEE_OTHER
    );
    let a = ui
        .post(
            &s,
            "/mail-policies/rat",
            &[("op", "add"), ("domain", "<b>bad domain</b>")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!a.body.contains("<b>bad"), "escaped");
    // SMTP routes: bad host, then a good one.
    let a = ui
        .post(
            &s,
            "/network/smtp-routes",
            &[
                ("op", "add"),
                ("domain", "example.com"),
                ("hosts", "127.0.0.1:99999"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        ui.post(
            &s,
            "/network/smtp-routes",
            &[
                ("op", "add"),
                ("domain", "example.com"),
                ("hosts", "127.0.0.1:2626")
            ]
        )
        .await
        .status,
        StatusCode::SEE_OTHER
    );
    // Destination controls
    let a = ui
        .post(
            &s,
            "/network/destination-controls",
            &[
                ("op", "add"),
                ("domain", "example.com"),
                ("max_connections", "many"),
                ("max_messages_per_connection", "5"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.body
            .contains("Maximum connections must be a whole number")
    );
    assert_eq!(
        ui.post(
            &s,
            "/network/destination-controls",
            &[
                ("op", "add"),
                ("domain", "example.com"),
                ("max_connections", "2"),
                ("max_messages_per_connection", "5"),
                ("tls", "required"),
                ("verify_tls", "on")
            ]
        )
        .await
        .status,
        StatusCode::SEE_OTHER
    );
    let a = ui
        .post(
            &s,
            "/network/destination-controls",
            &[("op", "delete"), ("index", "0")],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "the default row stays");
    // Bounce profile
    let a = ui
        .post(
            &s,
            "/network/bounce-profiles",
            &[
                ("max_retries", "-1"),
                ("max_queue_secs", "1"),
                ("initial_retry_secs", "1"),
                ("max_retry_secs", "1"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        ui.post(
            &s,
            "/network/bounce-profiles",
            &[
                ("max_retries", "3"),
                ("max_queue_secs", "600"),
                ("initial_retry_secs", "30"),
                ("max_retry_secs", "120")
            ]
        )
        .await
        .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        ui.state.store.pending_changes("admin").await.unwrap().len(),
        5
    );
    ui.post(&s, "/commit", &[]).await;
    let live = ui.live();
    let at = live.hat.iter().position(|g| g.name == "RELAYLIST");
    assert_eq!(at, Some(live.hat.len() - 2), "above the final ALL group");
    assert_eq!(live.rat[0].domain, "example.com");
    assert_eq!(live.smtp_routes[0].hosts, ["127.0.0.1:2626"]);
    assert_eq!(live.destination_controls[1].max_connections, 2);
    assert!(
        !live.bounce_profile.send_dsn,
        "an unchecked box turns DSNs off"
    );
    // Delete through the row forms.
    ui.post(
        &s,
        "/mail-policies/rat",
        &[("op", "delete"), ("index", "0")],
    )
    .await;
    ui.post(&s, "/commit", &[]).await;
    assert!(ui.live().rat.is_empty());
}

#[tokio::test]
async fn users_and_passwords() {
    let ui = Ui::new().await;
    let s = ui.login("admin").await;
    let a = ui
        .post(
            &s,
            "/admin/users",
            &[
                ("op", "save"),
                ("name", "bob smith"),
                ("password", "short"),
                ("role", "operator"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("A username is") && a.body.contains("at least 8 characters"));
    let a = ui
        .post(
            &s,
            "/admin/users",
            &[
                ("op", "save"),
                ("name", "bob"),
                ("password", "password1"),
                ("role", "wizard"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = ui
        .post(
            &s,
            "/admin/users",
            &[
                ("op", "save"),
                ("name", "bob"),
                ("password", "password1"),
                ("role", "operator"),
            ],
        )
        .await;
    assert_eq!(a.location, "/admin/users?done=user-saved");
    let bob = ui.login("bob").await;
    assert!(
        ui.get(&bob, "/monitor/status")
            .await
            .body
            .contains("Operator")
    );
    let a = ui
        .post(
            &s,
            "/admin/users",
            &[
                ("op", "save"),
                ("name", "admin"),
                ("password", ""),
                ("role", "readonly"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "no self-demotion");
    let a = ui
        .post(&s, "/admin/users", &[("op", "delete"), ("name", "admin")])
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "no self-removal");
    ui.post(
        &s,
        "/admin/users",
        &[("op", "delete"), ("name", "bob"), ("confirm", "yes")],
    )
    .await;
    assert_eq!(
        ui.get(&bob, "/monitor/status").await.status,
        StatusCode::SEE_OTHER,
        "bob's session ended"
    );
    let changes: Vec<String> = ui
        .state
        .store
        .audit_log(10)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|e| e.audit.changes)
        .collect();
    assert!(changes.contains(&"Users: removed account bob".to_owned()));

    // Own password.
    let v = ui.login("viewer").await;
    let a = ui
        .post(
            &v,
            "/admin/password",
            &[
                ("current", "wrong"),
                ("new", "password2"),
                ("confirm", "password2"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let a = ui
        .post(
            &v,
            "/admin/password",
            &[
                ("current", "password1"),
                ("new", "password2"),
                ("confirm", "password3"),
            ],
        )
        .await;
    assert!(a.body.contains("differ"));
    let a = ui
        .post(
            &v,
            "/admin/password",
            &[
                ("current", "password1"),
                ("new", "password2"),
                ("confirm", "password2"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        ui.get(&v, "/monitor/status").await.status,
        StatusCode::SEE_OTHER,
        "logged out"
    );
    let hash = ui
        .state
        .store
        .user("viewer")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(crate::auth::verify_password("password2", &hash));
}

#[tokio::test]
async fn tracking_search_escapes_and_checks_its_input() {
    let ui = Ui::new().await;
    let s = ui.login("viewer").await;
    let a = ui
        .get(
            &s,
            "/monitor/tracking?subject=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(!a.body.contains("<script>alert"));
    assert!(a.body.contains("No messages match."));
    let a = ui.get(&s, "/monitor/tracking?mid=abc").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("MID must be a number"));
    let a = ui.get(&s, "/monitor/tracking?since=yesterday").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("From must be a date and time"));
    let a = ui.get(&s, "/monitor/tracking?event=exploded").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body.contains("Unknown event &#34;exploded&#34;")
            || a.body.contains("Unknown event &quot;exploded&quot;"),
        "{}",
        a.body
    );
    let a = ui.get(&s, "/monitor/tracking?remote_ip=10.0.0").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("is not an IP address"));
    // The advanced fields keep what was searched for.
    let a = ui
        .get(
            &s,
            "/monitor/tracking?event=journal_failed&policy=DEFAULT&message_id=abc",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body
            .contains("<option value=\"journal_failed\" selected>Journal copy failed</option>")
    );
    assert!(
        a.body
            .contains("<option value=\"DEFAULT\" selected>DEFAULT</option>")
    );
    assert!(
        a.body
            .contains("id=\"message_id\" name=\"message_id\" value=\"abc\"")
    );
    let a = ui.get(&s, "/security/tdc/ledger?state=lost").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn mail_logs_page_filters_and_escapes() {
    let ui = Ui::new().await;
    let s = ui.login("viewer").await;
    let all = ui.get(&s, "/monitor/mail-logs").await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(all.body.contains("Start MID 7 ICID 3"));
    assert!(all.body.contains("&#60;b&#62;hi") || all.body.contains("&lt;b&gt;hi"));
    assert!(!all.body.contains("<b>hi"));
    let tdc = ui.get(&s, "/monitor/mail-logs?find=TDC%3A").await;
    assert!(tdc.body.contains("successfully delivered for scanning"));
    assert!(!tdc.body.contains("Start MID 7"));
    let last = ui.get(&s, "/monitor/mail-logs?lines=1").await;
    assert!(last.body.contains("MID 8 Subject") && !last.body.contains("Start MID 7"));
    let bad = ui.get(&s, "/monitor/mail-logs?lines=many").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// *Log Subscriptions*: the file with its rolled siblings, and the syslog push with its state
/// (here a server that refuses: the page and System Status say so).
#[tokio::test]
async fn log_subscriptions_page_shows_the_file_and_the_push() {
    let mut ui = Ui::new().await;
    let s = ui.login("viewer").await;
    let page = ui.get(&s, "/admin/log-subscriptions").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Not configured"), "{}", page.body);
    assert!(page.body.contains(">mail_logs</a>"));

    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (log, _thread, syslog) = rampart_maillog::MailLog::open(
        dir.path(),
        1 << 20,
        10,
        Some(rampart_maillog::SyslogConfig {
            transport: rampart_maillog::Transport::Tcp,
            host: "127.0.0.1".into(),
            port: closed.port(),
            facility: 2,
            framing: rampart_maillog::Framing::Newline,
            hostname: "rampart.test".into(),
            queue_lines: 10,
        }),
    )
    .unwrap();
    let syslog = syslog.unwrap();
    log.info("hello");
    let start = std::time::Instant::now();
    while syslog.status().last_error.is_none() {
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    ui.state = ui.state.clone().with_syslog(Some(syslog));
    let page = ui.get(&s, "/admin/log-subscriptions").await;
    let target = format!("tcp://127.0.0.1:{}", closed.port());
    assert!(
        page.body
            .contains(&format!("{target}, facility mail, newline framing")),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("Not connected</span> — cannot connect to"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("0 sent, 1 waiting, 0 dropped"),
        "{}",
        page.body
    );
    let status = ui.get(&s, "/monitor/status").await;
    assert!(
        status.body.contains(&format!(
            "{target} — <span class=\"disabled\">not connected</span>, 0 sent, 0 dropped"
        )),
        "{}",
        status.body
    );
}

/// The Anti-Spam and Anti-Virus page of a policy: each field reaches the staged settings, bad
/// values are refused with the reason, DEFAULT cannot use `(use default)`.
#[tokio::test]
async fn antispam_and_antivirus_pages() {
    let ui = Ui::new().await;
    let s = ui.login("admin").await;
    let page = ui.get(&s, "/mail-policies/incoming/DEFAULT/antispam").await;
    assert!(page.body.contains("Positively Identified Spam"));
    assert!(
        !page.body.contains("id=\"mode-default\""),
        "DEFAULT has no (use default)"
    );
    assert!(
        page.body.contains("id=\"engine-missing\""),
        "no engine configured here"
    );
    let spam = "/mail-policies/incoming/DEFAULT/antispam";
    let bad_action = ui
        .post(
            &s,
            spam,
            &[
                ("mode", "enabled"),
                ("positive_action", "shred"),
                ("suspect_action", "deliver"),
            ],
        )
        .await;
    assert_eq!(bad_action.status, StatusCode::BAD_REQUEST);
    assert!(bad_action.body.contains("shred"));
    let inherit = ui
        .post(
            &s,
            spam,
            &[
                ("mode", "default"),
                ("positive_action", "drop"),
                ("suspect_action", "deliver"),
            ],
        )
        .await;
    assert_eq!(inherit.status, StatusCode::BAD_REQUEST);
    assert!(
        inherit
            .body
            .contains("DEFAULT cannot use the default settings for Anti-Spam")
    );
    let injected = ui
        .post(
            &s,
            spam,
            &[
                ("mode", "enabled"),
                ("positive_action", "deliver"),
                ("positive_prefix", "[SPAM]\r\nBcc: x@example.com"),
                ("suspect_action", "deliver"),
            ],
        )
        .await;
    assert_eq!(injected.status, StatusCode::BAD_REQUEST);
    let ok = ui
        .post(
            &s,
            spam,
            &[
                ("mode", "enabled"),
                ("positive_action", "bounce"),
                ("positive_prefix", ""),
                ("suspect_action", "quarantine"),
                ("suspect_prefix", "[MAYBE] "),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let virus = "/mail-policies/outgoing/DEFAULT/antivirus";
    let ok = ui
        .post(
            &s,
            virus,
            &[
                ("mode", "disabled"),
                ("infected_action", "quarantine"),
                ("unscannable_action", "drop"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(
        ui.get(&s, "/mail-policies/incoming/DEFAULT/sideways")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    ui.post(&s, "/commit", &[]).await;
    let live = ui.live();
    let default_in = live.incoming_policies.last().unwrap();
    assert_eq!(
        default_in.antispam.positive.action,
        rampart_policy::ScanAction::Bounce
    );
    assert!(
        !default_in.antispam.suspect.enabled,
        "the unticked box switches suspect off"
    );
    assert_eq!(default_in.antispam.suspect.subject_prefix, "[MAYBE] ");
    let default_out = live.outgoing_policies.last().unwrap();
    assert_eq!(
        default_out.antivirus.mode,
        rampart_policy::ServiceMode::Disabled
    );
    assert_eq!(
        default_out.antivirus.unscannable.action,
        rampart_policy::ScanAction::Drop
    );
    // No engine is configured here: the columns read Disabled whatever the policies say.
    let table = ui.get(&s, "/mail-policies/incoming").await.body;
    assert!(table.contains("class=\"antispam-cell\"><a href=\"/mail-policies/incoming/DEFAULT/antispam\">Disabled</a>"), "{table}");
}

#[tokio::test]
async fn table_rows_edit_in_place_refuse_duplicates_and_warn_of_an_open_relay() {
    let ui = Ui::new().await;
    let s = ui.login("admin").await;
    for (domain, action) in [("example.com", "accept"), ("example.org", "accept")] {
        let a = ui
            .post(
                &s,
                "/mail-policies/rat",
                &[("op", "add"), ("domain", domain), ("action", action)],
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    }
    // The same domain again is refused in the page's words, with the row to edit instead.
    let a = ui
        .post(
            &s,
            "/mail-policies/rat",
            &[
                ("op", "add"),
                ("domain", "EXAMPLE.com"),
                ("action", "reject"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.body.contains(
            "RAT row 3: Domain &#34;EXAMPLE.com&#34; is in the table already (row 1); edit that entry instead."
        ),
        "{}",
        a.body
    );
    assert!(!a.body.contains("rat[2]"), "no internal names");
    // Each row has an Edit link; the form then shows the row and saves over it.
    let page = ui.get(&s, "/mail-policies/rat").await.body;
    assert!(page.contains("href=\"/mail-policies/rat?edit=1\">Edit</a>"));
    let form = ui.get(&s, "/mail-policies/rat?edit=1").await.body;
    assert!(form.contains("Edit Entry (row 2)") && form.contains("value=\"example.org\""));
    assert!(
        form.contains("name=\"op\" value=\"edit\"") && form.contains("name=\"index\" value=\"1\"")
    );
    let a = ui
        .post(
            &s,
            "/mail-policies/rat",
            &[
                ("op", "edit"),
                ("index", "1"),
                ("domain", "example.net"),
                ("action", "reject"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let pending = ui.state.store.pending_changes("admin").await.unwrap();
    assert_eq!(
        pending.last().unwrap().1,
        "RAT: row 2 changed to example.net (reject)"
    );
    assert_eq!(
        ui.get(&s, "/mail-policies/rat?edit=7").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ui.get(&s, "/mail-policies/rat?edit=x").await.status,
        StatusCode::BAD_REQUEST
    );
    // A HAT group edited under its own name is no duplicate of itself.
    let hat = ui.get(&s, "/mail-policies/hat?edit=0").await.body;
    let name = hat
        .split("id=\"name\" name=\"name\" value=\"")
        .nth(1)
        .unwrap();
    let name = name.split('"').next().unwrap().to_owned();
    let a = ui
        .post(
            &s,
            "/mail-policies/hat",
            &[
                ("op", "edit"),
                ("index", "0"),
                ("name", &name),
                ("hosts", "127.0.0.1\n::1"),
                ("policy", "RELAY"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    // Routes and destination controls edit in place; the default control keeps its name.
    ui.post(
        &s,
        "/network/smtp-routes",
        &[
            ("op", "add"),
            ("domain", "example.com"),
            ("hosts", "127.0.0.1:2626"),
        ],
    )
    .await;
    let form = ui.get(&s, "/network/smtp-routes?edit=0").await.body;
    assert!(form.contains("Edit Route") && form.contains(">127.0.0.1:2626</textarea>"));
    let a = ui
        .post(
            &s,
            "/network/destination-controls",
            &[
                ("op", "edit"),
                ("index", "0"),
                ("domain", "example.com"),
                ("max_connections", "5"),
                ("max_messages_per_connection", "5"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let controls = ui.get(&s, "/network/destination-controls").await.body;
    assert!(
        controls.contains("href=\"/network/destination-controls?edit=0\">Edit</a>"),
        "the default row can be edited"
    );
    let a = ui
        .post(
            &s,
            "/network/destination-controls",
            &[
                ("op", "edit"),
                ("index", "0"),
                ("domain", "default"),
                ("max_connections", "0"),
                ("max_messages_per_connection", "5"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.body
            .contains("Destination control for default: Maximum Connections must be 1-1000."),
        "{}",
        a.body
    );
    // ALL → Accept is allowed, but the RAT and Commit Changes pages say what it means.
    assert!(
        !ui.get(&s, "/mail-policies/rat")
            .await
            .body
            .contains("id=\"open-relay\"")
    );
    ui.post(
        &s,
        "/mail-policies/rat",
        &[("op", "add"), ("domain", "ALL"), ("action", "accept")],
    )
    .await;
    assert!(
        ui.get(&s, "/mail-policies/rat")
            .await
            .body
            .contains("id=\"open-relay\"")
    );
    assert!(ui.get(&s, "/commit").await.body.contains("open relay"));
    // Through the API, a RAT with a domain twice is refused as well.
    let live = ui.live();
    assert!(live.rat.is_empty(), "nothing committed yet");
}

#[tokio::test]
async fn a_form_submitted_unchanged_stages_nothing() {
    let ui = Ui::new().await;
    let s = ui.login("admin").await;
    let unchanged = [
        (
            "/network/bounce-profiles",
            vec![
                ("max_retries", "100"),
                ("max_queue_secs", "259200"),
                ("initial_retry_secs", "60"),
                ("max_retry_secs", "3600"),
                ("send_dsn", "on"),
            ],
        ),
        ("/mail-policies/incoming/DEFAULT/tdc", vec![("mode", "no")]),
    ];
    let defaults = rampart_settings::BounceProfile::default();
    assert_eq!(
        (
            defaults.max_retries,
            defaults.max_queue_secs,
            defaults.initial_retry_secs,
            defaults.max_retry_secs,
            defaults.send_dsn
        ),
        (100, 259_200, 60, 3600, true),
        "the form above repeats the defaults"
    );
    for (path, form) in unchanged {
        let a = ui.post(&s, path, &form).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}: {}", a.body);
        assert!(
            a.location.ends_with("?done=unchanged"),
            "{path}: {}",
            a.location
        );
        assert!(
            ui.state
                .store
                .pending_changes("admin")
                .await
                .unwrap()
                .is_empty(),
            "{path}"
        );
    }
    let page = ui
        .get(&s, "/network/bounce-profiles?done=unchanged")
        .await
        .body;
    assert!(page.contains("Nothing was changed"));
    // A real change is still staged.
    let a = ui
        .post(
            &s,
            "/network/bounce-profiles",
            &[
                ("max_retries", "5"),
                ("max_queue_secs", "259200"),
                ("initial_retry_secs", "60"),
                ("max_retry_secs", "3600"),
            ],
        )
        .await;
    assert!(a.location.ends_with("?done=staged"), "{}", a.location);
}

#[tokio::test]
async fn deleting_a_user_or_a_quarantined_message_asks_first() {
    let ui = Ui::new().await;
    let s = ui.login("admin").await;
    let a = ui
        .post(&s, "/admin/users", &[("op", "delete"), ("name", "viewer")])
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body
            .contains("Delete the account viewer (Read-Only Operator)?")
            && a.body.contains("name=\"confirm\" value=\"yes\"")
            && a.body.contains("href=\"/admin/users\" id=\"cancel\""),
        "{}",
        a.body
    );
    assert!(
        ui.state.store.user("viewer").await.unwrap().is_some(),
        "not yet"
    );
    let a = ui
        .post(
            &s,
            "/admin/users",
            &[("op", "delete"), ("name", "viewer"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(a.location, "/admin/users?done=user-deleted");
    assert!(ui.state.store.user("viewer").await.unwrap().is_none());
    // Users have an Edit link that fills the form with the account, name fixed.
    let page = ui.get(&s, "/admin/users?edit=oper").await.body;
    assert!(
        page.contains("Edit User oper")
            && page.contains("value=\"oper\" autocomplete=\"off\" readonly")
    );
    assert!(page.contains("<option value=\"operator\" selected>"));
    assert_eq!(
        ui.get(&s, "/admin/users?edit=nobody").await.status,
        StatusCode::NOT_FOUND
    );
    // A message that is not in the quarantine: nothing to ask about.
    let a = ui.post(&s, "/monitor/quarantine/42/delete", &[]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

/// A clean incoming message from `sender` to one recipient of example.com, queued, not yet
/// accepted.
async fn incoming(store: &Store, sender: &str, recipient: &str) -> rampart_store::NewMessage {
    rampart_store::NewMessage {
        mid: store.next_mid().await.unwrap(),
        icid: 1,
        sender: sender.into(),
        remote_ip: "192.0.2.7".into(),
        helo: "client".into(),
        sender_group: "UNKNOWNLIST".into(),
        relayed: false,
        policy: "DEFAULT".into(),
        verdict: "deliver".into(),
        findings: String::new(),
        threats: vec![],
        spam: None,
        virus: None,
        tls: None,
        message_id: None,
        subject: None,
        body: b"Subject: x\r\n\r\nx\r\n".to_vec(),
        recipients: vec![rampart_store::NewRecipient {
            rcpt_idx: 0,
            recipient: recipient.into(),
            queue_name: "example.com".into(),
            kind: rampart_store::QueueKind::Deliver,
            state: rampart_store::RowState::Queued,
        }],
        tracking: vec![],
    }
}

#[tokio::test]
async fn overview_counts_escapes_and_exports_csv() {
    let ui = Ui::new().await;
    let store = &ui.state.store;
    for (sender, findings, threats) in [
        ("a@<b>evil</b>.test", "", vec![]),
        (
            "b@example.org",
            "content filter no_exe",
            vec!["Content filter: no_exe".to_owned()],
        ),
        ("c@example.org", "", vec![]),
    ] {
        let mut m = incoming(store, sender, "=HYPERLINK(1)@example.com").await;
        m.findings = findings.into();
        m.threats = threats;
        store.accept(m).await.unwrap();
    }
    let s = ui.login("viewer").await;
    let a = ui.get(&s, "/monitor/overview?range=hour").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(!a.body.contains("<b>evil"), "keys are escaped");
    assert!(
        a.body.contains("&lt;b&gt;evil&lt;/b&gt;.test")
            || a.body.contains("&#60;b&#62;evil&#60;/b&#62;.test"),
        "{}",
        a.body
    );
    assert!(a.body.contains("Content filter: no_exe"));
    // Two clean, one content-filtered: the summary and the chart's bars say so.
    assert!(
        a.body
            .contains("<td>Clean</td><td class=\"num\">2</td><td class=\"num\">66.7 %</td>")
    );
    assert!(
        a.body
            .contains("<td>Content filters and other findings</td><td class=\"num\">1</td>")
    );
    assert!(a.body.contains(": Clean 2</title>"));
    assert!(a.body.contains("aria-current=\"true\">Hour</a>"));

    let csv = ui
        .get(&s, "/monitor/overview.csv?range=hour&table=recipients")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.body, "recipient,count\n'=hyperlink(1)@example.com,3\n");
    let series = ui.get(&s, "/monitor/overview.csv?range=day").await;
    assert!(series.body.starts_with("start,in_clean,in_spam,"));
    assert_eq!(series.body.lines().count(), 25, "a header and 24 hours");
    assert_eq!(
        ui.get(&s, "/monitor/overview?range=year").await.status,
        StatusCode::BAD_REQUEST
    );
    let bad = ui.get(&s, "/monitor/overview.csv?table=passwords").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("table must be one of series"));
}

#[tokio::test]
async fn delivery_details_hold_and_resume_by_role() {
    let ui = Ui::new().await;
    let store = &ui.state.store;
    let m = incoming(store, "a@example.org", "u@example.com").await;
    store.accept(m).await.unwrap();
    let viewer = ui.login("viewer").await;
    let a = ui.get(&viewer, "/monitor/delivery").await;
    assert!(
        a.body
            .contains("href=\"/monitor/delivery/host/example.com\"")
    );
    let a = ui.get(&viewer, "/monitor/delivery/host/example.com").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("Delivery Status: example.com"));
    assert!(
        !a.body.contains("Hold Delivery"),
        "read-only users see no buttons"
    );
    assert_eq!(
        ui.get(&viewer, "/monitor/delivery/host/nowhere.test")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ui.get(&viewer, "/monitor/delivery/host/a%20b").await.status,
        StatusCode::BAD_REQUEST
    );
    let a = ui
        .post(
            &viewer,
            "/monitor/delivery/hold",
            &[("host", "example.com")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    let oper = ui.login("oper").await;
    let a = ui.get(&oper, "/monitor/delivery/host/example.com").await;
    assert!(a.body.contains("Hold Delivery") && a.body.contains("Retry Delivery"));
    let a = ui
        .post_raw(
            &oper.cookie,
            "/monitor/delivery/hold",
            &[("host", "example.com")],
        )
        .await;
    assert_ne!(a.status, StatusCode::SEE_OTHER, "no CSRF token, no hold");
    assert!(store.held_hosts().await.unwrap().is_empty());
    let a = ui
        .post(&oper, "/monitor/delivery/hold", &[("host", "example.com")])
        .await;
    assert_eq!(a.location, "/monitor/delivery/host/example.com?done=held");
    let a = ui
        .get(&oper, "/monitor/delivery/host/example.com?done=held")
        .await;
    assert!(a.body.contains("Delivery suspended"));
    assert!(a.body.contains("Resume Delivery") && !a.body.contains("Retry Delivery"));
    assert!(a.body.contains("by oper"));
    let a = ui.get(&oper, "/monitor/delivery").await;
    assert!(a.body.contains("(held)"));
    let a = ui
        .post(
            &oper,
            "/monitor/delivery/hold",
            &[("host", "the.tdc.queue")],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("cannot be held"));
    let a = ui
        .post(
            &oper,
            "/monitor/delivery/resume",
            &[("host", "example.com")],
        )
        .await;
    assert_eq!(
        a.location,
        "/monitor/delivery/host/example.com?done=resumed"
    );
    let a = ui
        .post(
            &oper,
            "/monitor/delivery/resume",
            &[("host", "example.com")],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("is not suspended"));
    let a = ui
        .post(
            &oper,
            "/monitor/delivery/retry",
            &[("host", "example.com"), ("back", "host")],
        )
        .await;
    assert_eq!(
        a.location,
        "/monitor/delivery/host/example.com?done=retried"
    );
}

#[tokio::test]
async fn alert_settings_stage_validate_and_are_for_operators_and_admins() {
    let ui = Ui::new().await;
    let viewer = ui.login("viewer").await;
    assert_eq!(
        ui.get(&viewer, "/admin/alerts").await.status,
        StatusCode::FORBIDDEN
    );
    let oper = ui.login("oper").await;
    let a = ui.get(&oper, "/admin/alerts").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body.contains("<fieldset class=\"plain\" disabled>"),
        "operators only look"
    );
    assert!(a.body.contains("Send Test Alert"));
    assert!(a.body.contains("No alerts so far."));
    let a = ui
        .post(&oper, "/admin/alerts", &[("recipients", "ops@example.com")])
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // Without the appliance's alert sender (this test's web server), the test is refused.
    let a = ui.post(&oper, "/admin/alerts/test", &[]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    let admin = ui.login("admin").await;
    let form = |recipients: &'static str, repeat: &'static str| {
        vec![
            ("recipients", recipients),
            ("webhook_url", ""),
            ("webhook_severity", "critical"),
            ("from_address", ""),
            ("repeat_mins", repeat),
            ("queue_threshold", "5000"),
            ("disk_free_percent", "10"),
        ]
    };
    let a = ui
        .post(&admin, "/admin/alerts", &form("ops@example.com loud", "60"))
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.body
            .contains("the severity must be critical, warning or info")
    );
    let a = ui
        .post(&admin, "/admin/alerts", &form("ops@example.com", "0"))
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("1-10080"), "{}", a.body);
    let a = ui
        .post(
            &admin,
            "/admin/alerts",
            &form("ops@example.com critical\nnoc@example.com", "30"),
        )
        .await;
    assert_eq!(a.location, "/admin/alerts?done=staged");
    let a = ui.get(&admin, "/admin/alerts").await;
    assert!(
        a.body
            .contains("ops@example.com critical\nnoc@example.com warning")
    );
    assert!(a.body.contains("Commit Changes (1)"));
    // A webhook URL's path (often its credential) is shown to administrators only.
    ui.state
        .changes
        .apply(
            &rampart_store::Audit::new("admin", "api", "webhook".to_owned()),
            None,
            |s: &mut Settings| {
                s.alerts.webhook_url = "https://hooks.example.com/services/T0/B0/secret".into();
                Ok::<_, crate::ApiError>(())
            },
        )
        .await
        .unwrap();
    let a = ui.get(&oper, "/admin/alerts").await;
    assert!(!a.body.contains("secret"), "{}", a.body);
    assert!(a.body.contains("https://hooks.example.com/…"));
    // The same through the API: masked for an operator, whole for an administrator.
    for (user, whole) in [("oper", false), ("admin", true)] {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:password1"));
        let a = ui
            .send(
                Request::get("/api/v1/alerts")
                    .header(header::AUTHORIZATION, format!("Basic {basic}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.body.contains("secret"), whole, "{user}: {}", a.body);
    }
}

#[tokio::test]
async fn content_filter_builder_tests_saves_reorders_and_deletes() {
    let ui = Ui::new().await;
    let base = "/mail-policies/incoming/DEFAULT/content-filters";
    let viewer = ui.login("viewer").await;
    let a = ui.get(&viewer, &format!("{base}/builder")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        !a.body.contains("id=\"save\""),
        "read-only users test but do not save"
    );
    let message =
        "From: a@example.org\nSubject: Invoice 42\nContent-Type: text/plain\n\nPlease pay.\n";
    let filter = |name: &'static str, subject: &'static str, op: &'static str| {
        vec![
            ("name", name),
            ("combine", "all"),
            ("c0_type", "subject"),
            ("c0_name", ""),
            ("c0_value", subject),
            ("c1_type", "body"),
            ("c1_name", ""),
            ("c1_value", "pay"),
            ("c2_type", ""),
            ("c2_name", ""),
            ("c2_value", ""),
            ("a0_type", "tag_subject"),
            ("a0_name", ""),
            ("a0_value", "[INVOICE]"),
            ("a1_type", "quarantine"),
            ("a1_name", ""),
            ("a1_value", ""),
            ("message", message),
            ("client_ip", "192.0.2.1"),
            ("op", op),
        ]
    };
    // Test: each condition's result, and whether the filter matches.
    let a = ui
        .post(
            &viewer,
            &format!("{base}/builder"),
            &filter("invoices", "^invoice", "test"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body.contains("The filter matches this message"),
        "{}",
        a.body
    );
    assert!(
        a.body
            .contains("Its actions would apply: Tag subject: [INVOICE], Quarantine.")
    );
    let a = ui
        .post(
            &viewer,
            &format!("{base}/builder"),
            &filter("invoices", "^receipt", "test"),
        )
        .await;
    assert!(a.body.contains("The filter does not match this message"));
    assert!(
        a.body
            .contains("does not match</span> — Subject matches: ^receipt")
    );
    // A bad regex and a bad row are named; nothing is saved by a read-only user.
    let a = ui
        .post(
            &viewer,
            &format!("{base}/builder"),
            &filter("invoices", "(", "test"),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("invalid regex"), "{}", a.body);
    let a = ui
        .post(
            &viewer,
            &format!("{base}/builder"),
            &filter("invoices", "^invoice", "save"),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    let admin = ui.login("admin").await;
    let a = ui
        .post(
            &admin,
            &format!("{base}/builder"),
            &filter("invoices", "^invoice", "save"),
        )
        .await;
    assert_eq!(a.location, format!("{base}?done=staged"), "{}", a.body);
    let a = ui
        .post(
            &admin,
            &format!("{base}/builder"),
            &filter("receipts", "^receipt", "save"),
        )
        .await;
    assert_eq!(a.location, format!("{base}?done=staged"));
    // A second filter with the same name is refused.
    let a = ui
        .post(
            &admin,
            &format!("{base}/builder"),
            &filter("receipts", "^x", "save"),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.body.contains("is named &#34;receipts&#34; already")
            || a.body.contains("is named &quot;receipts&quot; already"),
        "{}",
        a.body
    );
    let page = ui.get(&admin, base).await.body;
    let first = page.find("<strong>invoices</strong>").unwrap();
    let second = page.find("<strong>receipts</strong>").unwrap();
    assert!(first < second);
    // Edit shows the filter in the rows; move down swaps; delete removes.
    let a = ui.get(&admin, &format!("{base}/builder?index=1")).await;
    assert!(a.body.contains("value=\"^receipt\""), "{}", a.body);
    let a = ui
        .post(
            &admin,
            &format!("{base}/move"),
            &[("index", "0"), ("to", "down")],
        )
        .await;
    assert_eq!(a.location, format!("{base}?done=staged"));
    let page = ui.get(&admin, base).await.body;
    assert!(
        page.find("<strong>receipts</strong>").unwrap()
            < page.find("<strong>invoices</strong>").unwrap()
    );
    let a = ui
        .post(&admin, &format!("{base}/delete"), &[("index", "0")])
        .await;
    assert_eq!(a.location, format!("{base}?done=staged"));
    let page = ui.get(&admin, base).await.body;
    assert!(
        !page.contains("<strong>receipts</strong>") && page.contains("<strong>invoices</strong>")
    );
    assert_eq!(
        ui.post(&admin, &format!("{base}/delete"), &[("index", "7")])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn hat_rows_carry_mail_flow_policy_limits() {
    let ui = Ui::new().await;
    let admin = ui.login("admin").await;
    let form = |messages: &'static str| {
        vec![
            ("op", "add"),
            ("name", "THROTTLED"),
            ("hosts", "192.0.2.0/24"),
            ("policy", "ACCEPT"),
            ("max_messages_per_connection", messages),
            ("max_recipients_per_hour", "500"),
            ("max_connections_per_ip", ""),
            ("tls", "required"),
        ]
    };
    let a = ui.post(&admin, "/mail-policies/hat", &form("many")).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.body
            .contains("Max. Messages per Connection must be a whole number"),
        "{}",
        a.body
    );
    let a = ui.post(&admin, "/mail-policies/hat", &form("10")).await;
    assert_eq!(a.location, "/mail-policies/hat?done=staged", "{}", a.body);
    let page = ui.get(&admin, "/mail-policies/hat").await.body;
    assert!(
        page.contains("10 msgs/connection<br>500 rcpts/hour per IP<br>TLS required"),
        "{page}"
    );
    let working = ui.state.changes.working("admin").await.unwrap();
    let g = working.hat.iter().find(|g| g.name == "THROTTLED").unwrap();
    assert_eq!(g.limits.max_messages_per_connection, Some(10));
    assert_eq!(g.limits.max_connections_per_ip, None);
    assert_eq!(g.limits.tls, Some(rampart_settings::TlsPolicy::Required));
}

#[tokio::test]
async fn each_listener_has_its_own_hat_page() {
    let ui = Ui::with(WebOptions {
        listeners: vec![
            crate::ListenerInfo {
                name: "InboundMail".into(),
                listen: vec!["0.0.0.0:25".into()],
                main: true,
            },
            crate::ListenerInfo {
                name: "OutboundMail".into(),
                listen: vec!["10.0.0.1:587".into()],
                main: false,
            },
        ],
        ..WebOptions::default()
    })
    .await;
    let admin = ui.login("admin").await;
    let a = ui.get(&admin, "/mail-policies/hat").await;
    assert!(
        a.body.contains("href=\"/mail-policies/hat/OutboundMail\""),
        "{}",
        a.body
    );
    let a = ui.get(&admin, "/mail-policies/hat/OutboundMail").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body.contains("127.0.0.0/8") && !a.body.contains("<strong>ALL</strong>"),
        "loopback only until changed"
    );
    for path in ["/mail-policies/hat/InboundMail", "/mail-policies/hat/Nope"] {
        assert_eq!(
            ui.get(&admin, path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let a = ui
        .post(
            &admin,
            "/mail-policies/hat/OutboundMail",
            &[
                ("op", "add"),
                ("name", "RELAYLIST"),
                ("hosts", "10.0.0.0/8"),
                ("policy", "RELAY"),
            ],
        )
        .await;
    assert_eq!(
        a.location, "/mail-policies/hat/OutboundMail?done=staged",
        "{}",
        a.body
    );
    let working = ui.state.changes.working("admin").await.unwrap();
    let hat = &working.listener_hats.first().unwrap().hat;
    assert_eq!(
        hat.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["LOOPBACK", "RELAYLIST"]
    );
    assert!(
        working.hat.iter().all(|g| g.name != "RELAYLIST"),
        "the main HAT is untouched"
    );
    let a = ui
        .get(&admin, "/mail-policies/hat/OutboundMail?edit=1")
        .await;
    assert!(
        a.body
            .contains("action=\"/mail-policies/hat/OutboundMail\"")
    );
}
