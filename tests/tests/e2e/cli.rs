//! The command line: configuration errors, saveconfig / loadconfig.

use crate::harness::*;

#[tokio::test]
async fn invalid_config_lists_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "hostnme = \"x\"\n[smtp]\nmax_message_size = -1\n[tdc]\ntls = \"sometimes\"\n",
    )
    .unwrap();
    let err = serve_refused(&path).await;
    for key in [
        "`hostnme`: unknown key",
        "`smtp.max_message_size`",
        "`tdc.tls`",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
}

#[tokio::test]
async fn saveconfig_loadconfig_round_trip_applies_without_restart() {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    let saved = app.dir.join("saved.toml");
    let out = app.cli(&["saveconfig", saved.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&saved).unwrap();
    assert!(
        text.contains("[[rat]]") && text.contains("domain = \"example.com\""),
        "{text}"
    );

    // An invalid file changes nothing and names every problem.
    let bad = app.dir.join("bad.toml");
    std::fs::write(&bad, "[[rat]]\ndomain = \"no such\"\naction = \"accept\"\n[[hat]]\nname = \"X\"\nhosts = [\"1.2.3.400\"]\npolicy = \"ACCEPT\"\n").unwrap();
    let out = app.cli(&["loadconfig", bad.to_str().unwrap()]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing was changed") && err.contains("rat[0]") && err.contains("hat[0]"),
        "{err}"
    );

    // A valid edit is picked up by the running appliance.
    let edited = text.replace("domain = \"example.com\"", "domain = \"example.net\"");
    std::fs::write(&saved, edited).unwrap();
    let out = app.cli(&["loadconfig", saved.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the running appliance to accept example.net", || async {
        let (mut c, _) = SmtpClient::greeted(app.smtp).await;
        c.cmd("EHLO client.test").await;
        c.cmd("MAIL FROM:<a@sender.test>").await;
        c.cmd("RCPT TO:<u@example.net>").await.code == 250
    })
    .await;
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    assert_eq!(
        c.cmd("RCPT TO:<u@example.com>").await.code,
        550,
        "the old table is gone"
    );

    // Round trip: the saved file of a fresh appliance after loadconfig is identical.
    let fresh = Appliance::start("").await;
    let out = fresh.cli(&["loadconfig", saved.to_str().unwrap()]).await;
    assert!(out.status.success());
    let again = fresh.dir.join("again.toml");
    assert!(
        fresh
            .cli(&["saveconfig", again.to_str().unwrap()])
            .await
            .status
            .success()
    );
    assert_eq!(
        std::fs::read_to_string(&again).unwrap(),
        std::fs::read_to_string(&saved).unwrap()
    );
}

#[tokio::test]
async fn tdcconfig_and_policyconfig_drive_the_running_appliance() {
    let app = Appliance::start("").await;
    let out = app.cli(&["tdcconfig", "--enable"]).await;
    assert!(
        !out.status.success(),
        "enabling without an address is refused"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Message Intake Address is required"));
    let out = app
        .cli(&[
            "tdcconfig",
            "--enable",
            "--intake-address",
            "journal@intake.test",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Threat Defense Connector: Enabled")
            && text.contains("DEFAULT")
            && text.contains("Disabled"),
        "{text}"
    );

    let ok = |o: &std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr))
    };
    ok(&app
        .cli(&[
            "policyconfig",
            "add",
            "finance",
            "--recipient",
            "@finance.example.com",
        ])
        .await);
    ok(&app
        .cli(&[
            "policyconfig",
            "tdc",
            "finance",
            "custom",
            "--intake-address",
            "fin@intake.test",
        ])
        .await);
    ok(&app.cli(&["policyconfig", "tdc", "DEFAULT", "global"]).await);
    let bad = app
        .cli(&[
            "policyconfig",
            "tdc",
            "finance",
            "custom",
            "--intake-address",
            "not-an-address",
        ])
        .await;
    assert!(!bad.status.success());
    // Anti-Spam and Anti-Virus per policy, AsyncOS's actions.
    ok(&app
        .cli(&[
            "policyconfig",
            "antispam",
            "finance",
            "enabled",
            "--positive-action",
            "drop",
            "--suspect",
            "off",
        ])
        .await);
    ok(&app
        .cli(&["policyconfig", "antivirus", "finance", "disabled"])
        .await);
    let bad = app
        .cli(&["policyconfig", "antivirus", "DEFAULT", "default"])
        .await;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("DEFAULT cannot use the default settings for Anti-Virus"),
        "{bad:?}"
    );
    let out = app.cli(&["policyconfig", "list"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    // No engine in this appliance's bootstrap file: both services read Disabled.
    assert!(text.contains("Anti-Spam      Anti-Virus"), "{text}");
    assert!(
        text.contains("finance")
            && text.contains("Enabled (custom: fin@intake.test)")
            && text.contains("Enabled (global)"),
        "{text}"
    );
    // The running appliance sees the change.
    wait_until("the API to show the CLI's policy", || async {
        let (_, list) = app
            .api(reqwest::Method::GET, "/policies/incoming", None)
            .await;
        list[0]["name"] == "finance" && list[0]["tdc_label"] == "Enabled"
    })
    .await;
    let (_, finance) = app
        .api(reqwest::Method::GET, "/policies/incoming/finance", None)
        .await;
    assert_eq!(finance["antispam"]["mode"], "enabled");
    assert_eq!(finance["antispam"]["positive"]["action"], "drop");
    assert_eq!(finance["antispam"]["suspect"]["enabled"], false);
    assert_eq!(finance["antivirus"]["mode"], "disabled");
    assert_eq!(finance["antispam_label"], "Disabled");
    // saveconfig / loadconfig keep policies and the connector exactly.
    let saved = app.dir.join("with-policies.toml");
    ok(&app.cli(&["saveconfig", saved.to_str().unwrap()]).await);
    let fresh = Appliance::start("").await;
    ok(&fresh.cli(&["loadconfig", saved.to_str().unwrap()]).await);
    let again = fresh.dir.join("again.toml");
    ok(&fresh.cli(&["saveconfig", again.to_str().unwrap()]).await);
    assert_eq!(
        std::fs::read_to_string(&again).unwrap(),
        std::fs::read_to_string(&saved).unwrap()
    );
    // The running appliance applies the loaded file within a second.
    wait_until("the loaded policy to be in force", || async {
        fresh
            .api(reqwest::Method::GET, "/policies/incoming/finance", None)
            .await
            .0
            == 200
    })
    .await;
    let (_, loaded) = fresh
        .api(reqwest::Method::GET, "/policies/incoming/finance", None)
        .await;
    assert_eq!(loaded["antispam"], finance["antispam"]);
    assert_eq!(loaded["antivirus"], finance["antivirus"]);
    let (_, loaded) = fresh
        .api(reqwest::Method::GET, "/policies/incoming/finance", None)
        .await;
    assert_eq!(loaded["antispam"], finance["antispam"]);
    assert_eq!(loaded["antivirus"], finance["antivirus"]);
    let out = fresh.cli(&["policyconfig", "delete", "DEFAULT"]).await;
    assert!(!out.status.success());
    ok(&fresh.cli(&["policyconfig", "delete", "finance"]).await);
}
