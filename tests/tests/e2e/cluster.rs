//! Cluster mode: three nodes on 127.0.0.2-4 sharing a real PostgreSQL (Debian's, started here on
//! a free loopback port with a throwaway data dir): a change on one node is in force on the
//! others, accounts and the audit log are shared, and with PostgreSQL stopped mail keeps flowing
//! (also across a restart) while configuration changes are refused, until it is back.

use rampart_testkit::Postgres;
use reqwest::Method;
use serde_json::json;

use crate::harness::*;
use crate::sink::{Script, Sink};

/// Debian's PostgreSQL for one test (fsync off), stopped with it.
fn postgres() -> Postgres {
    Postgres::start(false).expect("PostgreSQL is installed (cargo xtask test installs it)")
}

/// The configuration of node `name` listening on `ip`.
fn node_config(pg: &Postgres, name: &str, ip: &str) -> String {
    format!(
        "[smtp]\nlisten = [\"{ip}:0\"]\n\n[web]\nlisten = \"{ip}:0\"\n\n[cluster]\ndatabase_url = \"{}\"\nnode_name = \"{name}\"\n",
        pg.url()
    )
}

async fn node(pg: &Postgres, name: &str, ip: &str) -> Appliance {
    Appliance::start(&node_config(pg, name, ip)).await
}

/// Waits until every node of `others` has in force the settings generation `from` just saved.
async fn wait_in_force(from: &Appliance, others: &[&Appliance]) {
    let (_, cluster) = from.api(Method::GET, "/cluster", None).await;
    let generation = cluster["settings_generation"]["cluster"].as_i64().unwrap();
    for other in others {
        wait_until("the cluster's settings in force", || async {
            let (_, cluster) = other.api(Method::GET, "/cluster", None).await;
            cluster["settings_generation"]["in_force"].as_i64() >= Some(generation)
        })
        .await;
    }
}

/// Whether `app` accepts a recipient at `domain` (its RAT in force).
async fn accepts(app: &Appliance, domain: &str) -> bool {
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    let code = c.cmd(&format!("RCPT TO:<u@{domain}>")).await.code;
    c.cmd("QUIT").await;
    code == 250
}

#[tokio::test]
async fn a_change_on_one_node_is_in_force_on_every_node() {
    let pg = postgres();
    // Started together: they migrate the new database and create `admin` once between them.
    let (a, b, c) = tokio::join!(
        node(&pg, "node-a", "127.0.0.2"),
        node(&pg, "node-b", "127.0.0.3"),
        node(&pg, "node-c", "127.0.0.4"),
    );
    assert!(!accepts(&b, "cluster.example").await);

    // A change through node A's API...
    a.accept_domains(&["cluster.example"]).await;
    // ...is in force on B and C: their SMTP sessions accept the domain.
    for other in [&b, &c] {
        wait_until("the RAT change to reach the other nodes", || {
            accepts(other, "cluster.example")
        })
        .await;
    }
    let (_, rat) = c.api(Method::GET, "/rat", None).await;
    assert_eq!(rat[0]["domain"], "cluster.example", "{rat}");

    // One audit log, naming the node a change was made on.
    let (_, audit) = c.api(Method::GET, "/audit?limit=5", None).await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["node"] == "node-a" && e["source"] == "api"),
        "{audit}"
    );

    // An account made on B works on C.
    let (status, body) = b
        .api(
            Method::POST,
            "/users",
            Some(json!({"name": "oper", "password": "operator-passphrase", "role": "operator"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    wait_until("the new account on node C", || async {
        c.api_as("oper", "operator-passphrase", Method::GET, "/status", None)
            .await
            .0
            == 200
    })
    .await;

    // Every node reports in, with the cluster's settings generation in force.
    wait_until("three nodes at the cluster's generation", || async {
        let (_, cluster) = a.api(Method::GET, "/cluster", None).await;
        let generation = &cluster["settings_generation"]["cluster"];
        let nodes = cluster["nodes"].as_array().cloned().unwrap_or_default();
        nodes.len() == 3
            && nodes
                .iter()
                .all(|n| n["state"] == "up" && &n["settings_generation"] == generation)
    })
    .await;
    let (_, cluster) = b.api(Method::GET, "/cluster", None).await;
    assert_eq!(cluster["node"], "node-b");
    assert_eq!(cluster["database_reachable"], true);
    let page = b.page("/admin/cluster").await;
    for name in ["node-a", "node-b", "node-c"] {
        assert!(page.contains(name), "{page}");
    }
    let out = c.cli(&["clusterconfig"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("node-a") && text.contains("node-c"), "{text}");

    // A change made with the CLI on C reaches A too (the RAT is now cli.example alone).
    let file = c.dir.join("rat.toml");
    std::fs::write(
        &file,
        "[[rat]]\ndomain = \"cli.example\"\naction = \"accept\"\n",
    )
    .unwrap();
    let out = c
        .cli(&["loadconfig", "--partial", file.to_str().unwrap()])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for node in [&a, &b, &c] {
        wait_until("the CLI's change on every node", || {
            accepts(node, "cli.example")
        })
        .await;
    }

    // Mail through B and C is tracked centrally: A's whole-cluster search finds both, each
    // with its node; a search for one node finds only its own.
    for (node, subject) in [(&b, "via b"), (&c, "via c")] {
        let (mut client, _) = SmtpClient::greeted(node.smtp).await;
        let reply = client
            .send_mail("a@sender.test", &["u@cli.example"], &message(subject))
            .await;
        assert_eq!(reply.code, 250, "{}", reply.line());
        client.cmd("QUIT").await;
    }
    wait_until("both messages in the cluster's tracking", || async {
        let (_, found) = a
            .api(
                Method::GET,
                "/tracking?node=*&recipient=u@cli.example",
                None,
            )
            .await;
        found.as_array().is_some_and(|f| f.len() == 2)
    })
    .await;
    let (_, found) = a
        .api(
            Method::GET,
            "/tracking?node=*&recipient=u@cli.example",
            None,
        )
        .await;
    let nodes: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["node"].as_str().unwrap())
        .collect();
    assert!(
        nodes.contains(&"node-b") && nodes.contains(&"node-c"),
        "{found}"
    );
    assert!(
        found[0]["events"].as_array().is_some_and(|e| !e.is_empty()),
        "{found}"
    );
    let (_, found) = a
        .api(
            Method::GET,
            "/tracking?node=node-c&recipient=u@cli.example",
            None,
        )
        .await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["subject"], "via c", "{found}");
    // This node's own search stays local: A handled none of them.
    let (_, found) = a
        .api(Method::GET, "/tracking?recipient=u@cli.example", None)
        .await;
    assert_eq!(found.as_array().unwrap().len(), 0, "{found}");
    let page = a
        .page("/monitor/tracking?node=*&recipient=u%40cli.example")
        .await;
    assert!(page.contains("via b") && page.contains("node-c"), "{page}");
    let out = a
        .cli(&["tracking", "--node", "*", "--recipient", "u@cli.example"])
        .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("node-b: MID") && text.contains("node-c: MID"),
        "{text}"
    );

    // The counters come with the heartbeats: the cluster's totals, and `tophosts` summed (the
    // two messages wait for cli.example, which has no route, one on B and one on C).
    wait_until("the cluster's totals", || async {
        let (_, cluster) = a.api(Method::GET, "/cluster", None).await;
        cluster["totals"]["messages_received"].as_u64() >= Some(2)
    })
    .await;
    wait_until("cli.example in the cluster's tophosts", || async {
        let (_, hosts) = a.api(Method::GET, "/tophosts?node=*", None).await;
        hosts.as_array().is_some_and(|h| {
            h.iter()
                .any(|r| r["host"] == "cli.example" && r["active_recipients"] == 2)
        })
    })
    .await;
    let (_, hosts) = a.api(Method::GET, "/tophosts", None).await;
    assert!(
        !hosts.to_string().contains("cli.example"),
        "node A queued nothing: {hosts}"
    );
    let (_, hosts) = a.api(Method::GET, "/tophosts?node=node-b", None).await;
    assert!(hosts.to_string().contains("cli.example"), "{hosts}");
    let (status, body) = a.api(Method::GET, "/tophosts?node=nosuch", None).await;
    assert_eq!(status, 404, "{body}");
    // A node name is a name: anything else is refused before any query.
    for path in [
        "/tophosts?node=a%20b",
        "/tracking?node=x%27%3B",
        "/ledger?node=..%2Fetc",
    ] {
        let (status, body) = a.api(Method::GET, path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    let page = a.page("/admin/cluster").await;
    assert!(page.contains("cluster-total"), "{page}");
    let page = a.page("/monitor/delivery?node=*").await;
    assert!(page.contains("data-host=\"cli.example\""), "{page}");
    let page = a.page("/monitor/delivery").await;
    assert!(!page.contains("data-host=\"cli.example\""), "{page}");
    let page = a.page("/monitor/status").await;
    assert!(page.contains("id=\"cluster-totals\""), "{page}");

    // The journal ledger of the whole cluster: the connector turned on through A, a clean
    // message through C gets a journal copy on C, which A's whole-cluster ledger shows.
    let intake = Sink::start(Script::default()).await;
    for (path, body) in [
        (
            "/smtp-routes",
            json!([{"domain": "intake.test", "hosts": [intake.addr.to_string()]}]),
        ),
        (
            "/tdc",
            json!({"enabled": true, "intake_address": "journal@intake.test"}),
        ),
        (
            "/policies/incoming/DEFAULT",
            json!({"name": "DEFAULT", "tdc": {"mode": "global"}}),
        ),
    ] {
        let (status, resp) = a.api(Method::PUT, path, Some(body)).await;
        assert_eq!(status, 200, "PUT {path}: {resp}");
    }
    wait_in_force(&a, &[&c]).await;
    let (mut client, _) = SmtpClient::greeted(c.smtp).await;
    let reply = client
        .send_mail(
            "a@sender.test",
            &["u@cli.example"],
            &message("journaled via c"),
        )
        .await;
    assert_eq!(reply.code, 250, "{}", reply.line());
    client.cmd("QUIT").await;
    wait_until("node C's journal copy in the cluster's ledger", || async {
        let (_, ledger) = a.api(Method::GET, "/ledger?node=*", None).await;
        ledger.as_array().is_some_and(|l| {
            l.iter()
                .any(|e| e["node"] == "node-c" && e["intake_address"] == "journal@intake.test")
        })
    })
    .await;
    let (_, ledger) = a.api(Method::GET, "/ledger", None).await;
    assert_eq!(
        ledger.as_array().unwrap().len(),
        0,
        "A journaled nothing: {ledger}"
    );
    let page = a.page("/security/tdc/ledger?node=*").await;
    assert!(page.contains("node-c"), "{page}");
}

#[tokio::test]
async fn with_the_database_down_mail_flows_and_changes_are_refused() {
    let pg = postgres();
    let sink = Sink::start(Script::default()).await;
    let a = node(&pg, "node-a", "127.0.0.2").await;
    let b = node(&pg, "node-b", "127.0.0.3").await;
    a.accept_domains(&["example.com"]).await;
    for (path, body) in [
        (
            "/smtp-routes",
            json!([{"domain": "example.com", "hosts": [sink.addr.to_string()]}]),
        ),
        (
            "/bounce-profile",
            json!({"initial_retry_secs": 1, "max_retry_secs": 1}),
        ),
    ] {
        let (status, resp) = a.api(Method::PUT, path, Some(body)).await;
        assert_eq!(status, 200, "PUT {path}: {resp}");
    }
    wait_in_force(&a, &[&b]).await;

    // Killing a node loses nothing it accepted: the destination defers the first try, B is
    // killed with the message queued, and B's next start delivers it.
    sink.set(|s| s.data.push_back("451 4.3.0 try again later".into()));
    let (mut client, _) = SmtpClient::greeted(b.smtp).await;
    let reply = client
        .send_mail(
            "a@sender.test",
            &["u@example.com"],
            &message("survives a kill"),
        )
        .await;
    assert_eq!(reply.code, 250, "{}", reply.line());
    let b = b
        .crash_and_restart(&node_config(&pg, "node-b", "127.0.0.3"))
        .await;
    let got = sink.wait_messages(1).await;
    assert!(got[0].text().contains("survives a kill"));

    pg.stop_server().unwrap();
    // Mail through B still flows, with the settings in force.
    let (mut client, _) = SmtpClient::greeted(b.smtp).await;
    let reply = client
        .send_mail("a@sender.test", &["u@example.com"], &message("while down"))
        .await;
    assert_eq!(reply.code, 250, "{}", reply.line());
    client.cmd("QUIT").await;
    sink.wait_messages(2).await;

    // A change is refused with a clear error, and the outage shows.
    let (status, body) = b
        .api(
            Method::PUT,
            "/rat",
            Some(json!([{"domain": "other.example", "action": "accept"}])),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("cluster database is unreachable"),
        "{body}"
    );
    let (_, cluster) = b.api(Method::GET, "/cluster", None).await;
    assert_eq!(cluster["database_reachable"], false, "{cluster}");
    assert!(cluster["nodes"].is_null(), "{cluster}");
    let status_page = b.page("/monitor/status").await;
    assert!(status_page.contains("unreachable"), "{status_page}");

    // A restart while it is down starts on the node's own copy of the settings.
    let b = b
        .crash_and_restart(&node_config(&pg, "node-b", "127.0.0.3"))
        .await;
    let (mut client, _) = SmtpClient::greeted(b.smtp).await;
    let reply = client
        .send_mail(
            "a@sender.test",
            &["u@example.com"],
            &message("after restart"),
        )
        .await;
    assert_eq!(reply.code, 250, "{}", reply.line());
    client.cmd("QUIT").await;
    sink.wait_messages(3).await;

    // Back: changes are accepted again and reach the other node.
    pg.start_server().unwrap();
    wait_until("a change accepted again", || async {
        b.api(
            Method::PUT,
            "/rat",
            Some(json!([{"domain": "example.com", "action": "accept"}, {"domain": "other.example", "action": "accept"}])),
        )
        .await
        .0 == 200
    })
    .await;
    wait_until("the change on node A", || accepts(&a, "other.example")).await;
    wait_until("node B's cluster view back", || async {
        b.api(Method::GET, "/cluster", None).await.1["database_reachable"] == true
    })
    .await;
    // What B tracked while the database was down was shipped when it came back.
    wait_until("B's tracking shipped after the outage", || async {
        let (_, found) = a
            .api(
                Method::GET,
                "/tracking?node=node-b&subject=after%20restart",
                None,
            )
            .await;
        found.as_array().is_some_and(|f| f.len() == 1)
    })
    .await;
    let (_, found) = a
        .api(
            Method::GET,
            "/tracking?node=node-b&subject=while%20down",
            None,
        )
        .await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
}

#[tokio::test]
async fn a_single_appliance_joining_a_new_cluster_keeps_its_settings() {
    let pg = postgres();
    let solo =
        Appliance::start("[smtp]\nlisten = [\"127.0.0.2:0\"]\n\n[web]\nlisten = \"127.0.0.2:0\"\n")
            .await;
    solo.accept_domains(&["solo.example"]).await;
    // The same data dir, now a node of the cluster: it seeds the empty cluster database.
    let a = solo
        .crash_and_restart(&node_config(&pg, "node-a", "127.0.0.2"))
        .await;
    assert!(accepts(&a, "solo.example").await);
    let b = node(&pg, "node-b", "127.0.0.3").await;
    assert!(accepts(&b, "solo.example").await);
    // Its admin account came along: the API on B answers to it.
    let (status, audit) = b.api(Method::GET, "/audit", None).await;
    assert_eq!(status, 200, "{audit}");
    assert!(
        audit.to_string().contains("seeded from node node-a"),
        "{audit}"
    );
    let out = b.cli(&["migrate"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains(&format!(
                "cluster database 127.0.0.1:{}/rampart: up to date",
                pg.port
            )),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
