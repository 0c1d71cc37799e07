//! Mail sent with the real swaks, as an administrator would test the appliance.

use crate::harness::*;

async fn swaks(app: &Appliance, extra: &[&str]) -> (bool, String) {
    let server = app.smtp.to_string();
    let out = tokio::process::Command::new("swaks")
        .args([
            "--server",
            &server,
            "--from",
            "sender@sender.test",
            "--to",
            "user@example.com",
            "--helo",
            "swaks.test",
        ])
        .args(extra)
        .output()
        .await
        .expect("swaks is installed (cargo xtask test installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn mid_of(transcript: &str) -> u64 {
    let line = transcript
        .lines()
        .find(|l| l.contains("queued as"))
        .unwrap_or_else(|| panic!("{transcript}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn swaks_plain_and_starttls() {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    let (ok, out) = swaks(&app, &[]).await;
    assert!(ok, "{out}");
    let plain = mid_of(&out);
    let (ok, out) = swaks(&app, &["--tls"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("<~  250 2.0.0 Ok: queued as"),
        "the final reply came over TLS:\n{out}"
    );
    let tls = mid_of(&out);
    let store = app.store().await;
    for mid in [plain, tls] {
        let rows = store.queue_rows(rampart_store::Mid(mid)).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, rampart_store::RowState::Queued);
    }
    app.wait_log(&format!("MID {tls} queued for delivery"))
        .await;
}

#[tokio::test]
async fn swaks_relay_attempt_is_refused() {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    let server = app.smtp.to_string();
    let out = tokio::process::Command::new("swaks")
        .args([
            "--server",
            &server,
            "--from",
            "a@sender.test",
            "--to",
            "victim@elsewhere.test",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("<** 550 5.7.1 Relaying denied"), "{text}");
}
