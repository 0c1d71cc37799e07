//! `cargo xtask e2e --cluster`: the cluster demo (`docker/compose.cluster.yaml`: PostgreSQL from
//! Debian's packages and three nodes) across real container networks. Mail through every node
//! is delivered and journaled; a change made on node1 is in force on node3; the whole cluster's
//! tracking is searchable from node2; node3 cut off the database network (`docker network
//! disconnect`) keeps taking mail and refuses changes, and catches up when reconnected.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::container::{compose, curl, docker_available, wait};

const PROJECT: &str = "rampart-cluster-e2e";
const PASSWORD: &str = "e2e-admin-password";
/// (SMTP, web) ports published for node1, node2, node3.
const PORTS: [(&str, &str); 3] = [("13525", "13443"), ("13526", "13444"), ("13527", "13445")];

fn dc(args: &[&str]) -> Command {
    let base = compose();
    let mut cmd = Command::new(&base[0]);
    cmd.args(&base[1..])
        .args(["-f", "docker/compose.cluster.yaml", "-p", PROJECT])
        .args(args)
        .env("RAMPART_ADMIN_PASSWORD", PASSWORD)
        .env("RAMPART_DB_PASSWORD", "e2e-db-password");
    for (i, (smtp, web)) in PORTS.iter().enumerate() {
        let suffix = if i == 0 {
            String::new()
        } else {
            format!("_{}", i + 1)
        };
        cmd.env(format!("RAMPART_SMTP_PORT{suffix}"), smtp)
            .env(format!("RAMPART_WEB_PORT{suffix}"), web);
    }
    cmd
}

pub fn run() -> Result<()> {
    if !docker_available() {
        eprintln!("xtask: *** NO DOCKER ENGINE: the cluster end-to-end test is SKIPPED ***");
        return Ok(());
    }
    crate::ensure_packages(&[("swaks", "swaks"), ("curl", "curl")])?;
    crate::container::rampart_image()?;
    crate::container::postgres_image()?;
    let _ = dc(&["down", "-v", "--remove-orphans"]).status();
    let result = scenario();
    if result.is_err() {
        let _ = dc(&["logs", "--no-color", "--tail", "80"]).status();
    }
    let _ = dc(&["down", "-v", "--remove-orphans"]).status();
    result?;
    eprintln!("xtask: cluster e2e passed");
    Ok(())
}

/// An API request to node `n` (0-based) as the administrator; status and body.
fn api(n: usize, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    let url = format!("https://127.0.0.1:{}{path}", PORTS[n].1);
    let auth = format!("admin:{PASSWORD}");
    let mut args = vec!["-u", auth.as_str(), "-X", method];
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "--data", b]);
    }
    args.push(&url);
    curl(&args)
}

/// swaks through node `n`; whether the message was accepted.
fn swaks(n: usize, to: &str, subject: &str) -> Result<bool> {
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{}", PORTS[n].0),
            "--to",
            to,
            "--from",
            "tester@sender.test",
            "--header",
            &format!("Subject: {subject}"),
        ])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("250 2.0.0 Ok: queued as"))
}

fn container(service: &str) -> Result<String> {
    let out = dc(&["ps", "-q", service]).output()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if id.is_empty() {
        bail!("no container for {service}");
    }
    Ok(id)
}

/// How many messages the mail server has stored.
fn delivered() -> Result<usize> {
    let id = container("mail")?;
    let dest = std::env::temp_dir().join("rampart-cluster-e2e-mail");
    let _ = std::fs::remove_dir_all(&dest);
    let ok = Command::new("docker")
        .args(["cp", &format!("{id}:/sink"), dest.to_str().unwrap_or("")])
        .output()?;
    if !ok.status.success() {
        return Ok(0);
    }
    Ok(std::fs::read_dir(&dest)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .count())
}

fn scenario() -> Result<()> {
    crate::run(&mut dc(&["up", "-d"]))?;
    for n in 0..3 {
        wait(
            &format!("node{} to serve", n + 1),
            Duration::from_secs(90),
            || Ok(api(n, "GET", "/api/v1/health", None)?.0 == 200),
        )?;
    }
    wait(
        "three nodes in the cluster",
        Duration::from_secs(60),
        || {
            let (_, body) = api(0, "GET", "/api/v1/cluster", None)?;
            Ok(body.contains("\"database_reachable\":true")
                && body.matches("\"state\":\"up\"").count() == 3)
        },
    )?;

    // Mail through every node is delivered; the demo settings reached all three.
    for n in 0..3 {
        if !swaks(n, "user@example.com", &format!("via node{}", n + 1))? {
            bail!("node{} refused mail for example.com", n + 1);
        }
    }
    wait("three messages delivered", Duration::from_secs(60), || {
        Ok(delivered()? >= 3)
    })?;

    // A change on node1 is in force on node3.
    let rat = r#"[{"domain": "example.com", "action": "accept"}, {"domain": "cluster.test", "action": "accept"}]"#;
    let (status, body) = api(0, "PUT", "/api/v1/rat", Some(rat))?;
    if status != 200 {
        bail!("PUT /api/v1/rat on node1 answered {status}: {body}");
    }
    wait(
        "node3 to accept cluster.test",
        Duration::from_secs(30),
        || swaks(2, "user@cluster.test", "new domain"),
    )?;

    // The whole cluster's tracking, from node2.
    wait(
        "every node's messages in node2's cluster-wide search",
        Duration::from_secs(30),
        || {
            let (_, body) = api(
                1,
                "GET",
                "/api/v1/tracking?node=*&recipient=user@example.com",
                None,
            )?;
            Ok(["node1", "node2", "node3"]
                .iter()
                .all(|n| body.contains(&format!("\"node\":\"{n}\""))))
        },
    )?;

    // node3 cut off the database: mail flows, changes are refused.
    let network = format!("{PROJECT}_db");
    let node3 = container("node3")?;
    crate::run(Command::new("docker").args(["network", "disconnect", &network, &node3]))?;
    let before = delivered()?;
    if !swaks(2, "user@example.com", "while cut off")? {
        bail!("node3 refused mail while cut off the database");
    }
    wait(
        "the message through node3 delivered",
        Duration::from_secs(60),
        || Ok(delivered()? > before),
    )?;
    let rat2 = r#"[{"domain": "example.com", "action": "accept"}, {"domain": "cluster.test", "action": "accept"}, {"domain": "later.test", "action": "accept"}]"#;
    let (status, body) = api(2, "PUT", "/api/v1/rat", Some(rat2))?;
    if status != 503 || !body.contains("cluster database is unreachable") {
        bail!("a change on node3 while cut off answered {status}: {body}");
    }
    let (_, cluster) = api(2, "GET", "/api/v1/cluster", None)?;
    if !cluster.contains("\"database_reachable\":false") {
        bail!("node3 does not show the outage: {cluster}");
    }

    // Reconnected: changes work again and reach node1.
    crate::run(Command::new("docker").args(["network", "connect", &network, &node3]))?;
    wait(
        "a change on node3 accepted again",
        Duration::from_secs(60),
        || Ok(api(2, "PUT", "/api/v1/rat", Some(rat2))?.0 == 200),
    )?;
    wait(
        "node3's change in force on node1",
        Duration::from_secs(30),
        || swaks(0, "user@later.test", "after reconnect"),
    )?;
    let (_, audit) = api(0, "GET", "/api/v1/audit?limit=5", None)?;
    if !audit.contains("\"node\":\"node3\"") {
        bail!("the audit log does not show node3's change: {audit}");
    }
    let (_, tracking) = api(
        0,
        "GET",
        "/api/v1/tracking?node=node3&subject=while%20cut%20off",
        None,
    )
    .context("tracking")?;
    wait(
        "node3's tracking shipped after the outage",
        Duration::from_secs(30),
        || {
            let (_, t) = api(
                0,
                "GET",
                "/api/v1/tracking?node=node3&subject=while%20cut%20off",
                None,
            )?;
            Ok(t.contains("while cut off"))
        },
    )
    .with_context(|| format!("last answer: {tracking}"))?;
    Ok(())
}
