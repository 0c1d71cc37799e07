//! Cluster mode: three nodes on 127.0.0.2-4 sharing a real PostgreSQL (Debian's, started here on
//! a free loopback port with a throwaway data dir): a change on one node is in force on the
//! others, accounts and the audit log are shared, and with PostgreSQL stopped mail keeps flowing
//! (also across a restart) while configuration changes are refused, until it is back.

use std::path::PathBuf;
use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::harness::*;
use crate::sink::{Script, Sink};

/// A PostgreSQL server for one test, stopped with it.
pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// initdb refuses to run as root: the server then runs as the `postgres` user.
    as_postgres: bool,
}

impl Postgres {
    pub async fn start() -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (cargo xtask test installs it)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("pg_ctl").exists())
            .max()
            .expect("a PostgreSQL version under /usr/lib/postgresql");
        let dir = tempfile::tempdir().unwrap();
        let uid = Command::new("id").arg("-u").output().unwrap().stdout;
        let as_postgres = String::from_utf8_lossy(&uid).trim() == "0";
        let pg = Postgres {
            port: free_port(),
            bin,
            dir,
            as_postgres,
        };
        std::fs::create_dir(pg.data()).unwrap();
        if as_postgres {
            run("chmod", &["755".as_ref(), pg.dir.path().as_os_str()]);
            run(
                "chown",
                &["postgres:postgres".as_ref(), pg.data().as_os_str()],
            );
        }
        pg.pg(
            "initdb",
            &[
                "-D",
                &pg.data().display().to_string(),
                "-A",
                "trust",
                "-U",
                "rampart",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_server();
        pg.pg(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "rampart",
                "rampart",
            ],
        );
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://rampart@127.0.0.1:{}/rampart", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server on its data dir and waits until it takes connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.data().display()
        );
        let data = self.data().display().to_string();
        let log = self.data().join("server.log").display().to_string();
        self.pg(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
    }

    /// Stops the server (its clients' connections end at once).
    pub fn stop_server(&self) {
        let data = self.data().display().to_string();
        self.pg("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn pg(&self, program: &str, args: &[&str]) {
        let out = self.command(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn run(program: &str, args: &[&std::ffi::OsStr]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} failed");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    let pg = Postgres::start().await;
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
    let pg = Postgres::start().await;
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

    pg.stop_server();
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
    pg.start_server();
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
    let pg = Postgres::start().await;
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
