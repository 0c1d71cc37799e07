//! A `250` after DATA means the message is on disk: it survives SIGKILL.

use crate::harness::*;

#[tokio::test]
async fn accepted_mail_survives_sigkill() {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    let mut mids = Vec::new();
    // Several concurrent sessions, so that commits are grouped.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let addr = app.smtp;
        tasks.push(tokio::spawn(async move {
            let (mut c, _) = SmtpClient::greeted(addr).await;
            queued_mid(
                &c.send_mail(
                    "a@sender.test",
                    &["u@example.com", "v@example.com"],
                    &message(&format!("durable{i}")),
                )
                .await,
            )
        }));
    }
    for t in tasks {
        mids.push(t.await.unwrap());
    }
    // Kill at once: no shutdown, no flush beyond what the 250 already promised.
    let app = app.crash_and_restart("").await;
    let store = app.store().await;
    for mid in &mids {
        let m = store.message(rampart_store::Mid(*mid)).await.unwrap();
        assert!(m.is_some(), "MID {mid} lost");
        let rows = store.queue_rows(rampart_store::Mid(*mid)).await.unwrap();
        assert_eq!(rows.len(), 2, "MID {mid} has all its queue rows");
        assert!(
            rows.iter()
                .all(|r| r.state == rampart_store::RowState::Queued)
        );
    }
    // IDs are never reused after the restart.
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let next = queued_mid(
        &c.send_mail("a@sender.test", &["u@example.com"], &message("after"))
            .await,
    );
    assert!(mids.iter().all(|m| *m < next), "MID {next} after {mids:?}");
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly_and_idle_sessions_get_421() {
    let mut app = Appliance::start("").await;
    let (mut idle, _) = SmtpClient::greeted(app.smtp).await;
    assert_eq!(idle.cmd("EHLO client.test").await.code, 250);
    assert!(app.terminate().await, "exit status 0");
    assert_eq!(
        idle.reply().await.unwrap().line(),
        "421 4.3.2 Service shutting down, try again later"
    );
    assert!(app.mail_logs().contains("Rampart shutting down"));
}
