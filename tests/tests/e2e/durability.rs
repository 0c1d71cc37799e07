//! A `250` after DATA means the message is on disk: it survives SIGKILL.

use crate::harness::*;

/// A message of `subject` whose body is large enough (≥ 32 KiB) to be a file of the spool.
fn large_message(subject: &str) -> String {
    let line = format!("{subject} {}\r\n", "0123456789abcdef".repeat(4));
    format!(
        "{}{}",
        message(subject),
        line.repeat(48 * 1024 / line.len())
    )
}

/// The spool's body files (`rampart.spool/NNNNNN/MID.eml` in the data dir), by MID.
fn spool_files(data_dir: &std::path::Path) -> Vec<u64> {
    let mut mids = Vec::new();
    let Ok(dirs) = std::fs::read_dir(data_dir.join("rampart.spool")) else {
        return mids;
    };
    for dir in dirs {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let name = file.unwrap().file_name().into_string().unwrap();
            mids.push(name.strip_suffix(".eml").unwrap().parse().unwrap());
        }
    }
    mids.sort();
    mids
}

#[tokio::test]
async fn accepted_mail_survives_sigkill() {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    // Several concurrent sessions, so that commits are grouped; half of the messages large
    // enough for their bodies to be files of the spool, written before the commit.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let addr = app.smtp;
        tasks.push(tokio::spawn(async move {
            let (mut c, _) = SmtpClient::greeted(addr).await;
            let subject = format!("durable{i}");
            let text = if i % 2 == 0 {
                message(&subject)
            } else {
                large_message(&subject)
            };
            let reply = c
                .send_mail("a@sender.test", &["u@example.com", "v@example.com"], &text)
                .await;
            (queued_mid(&reply), text)
        }));
    }
    let mut sent = Vec::new();
    for t in tasks {
        sent.push(t.await.unwrap());
    }
    let mids: Vec<u64> = sent.iter().map(|(mid, _)| *mid).collect();
    let mut large: Vec<u64> = sent
        .iter()
        .filter(|(_, text)| text.len() >= 32 * 1024)
        .map(|(mid, _)| *mid)
        .collect();
    large.sort();
    assert_eq!(
        spool_files(&app.dir.join("data")),
        large,
        "the large bodies, and only those, are files"
    );
    // A body file whose commit never happened (the process died between the two): the next
    // start removes it.
    let orphan = mids.iter().max().unwrap() + 1;
    let orphan_path = app
        .dir
        .join("data/rampart.spool")
        .join(format!("{:06}", orphan / 10_000))
        .join(format!("{orphan}.eml"));
    std::fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
    std::fs::write(&orphan_path, "never committed").unwrap();

    // Kill at once: no shutdown, no flush beyond what the 250 already promised.
    let app = app.crash_and_restart("").await;
    let store = app.store().await;
    for (mid, text) in &sent {
        let m = store.message(rampart_store::Mid(*mid)).await.unwrap();
        let m = m.unwrap_or_else(|| panic!("MID {mid} lost"));
        assert!(
            m.body.ends_with(text.as_bytes()),
            "MID {mid} has the body it was sent with"
        );
        let rows = store.queue_rows(rampart_store::Mid(*mid)).await.unwrap();
        assert_eq!(rows.len(), 2, "MID {mid} has all its queue rows");
        assert!(
            rows.iter()
                .all(|r| r.state == rampart_store::RowState::Queued)
        );
    }
    wait_until("the orphan body file to be swept", || async {
        !orphan_path.exists()
    })
    .await;
    assert_eq!(
        spool_files(&app.dir.join("data")),
        large,
        "committed bodies stay"
    );
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
