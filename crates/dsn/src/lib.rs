//! Delivery status notifications (RFC 3464): a `multipart/report` to the envelope sender when
//! delivery failed for good, with the human explanation, the machine-readable status per recipient
//! and the original message's headers (`text/rfc822-headers`, RFC 6522).

/// One failed recipient.
#[derive(Debug, Clone)]
pub struct Failed {
    pub recipient: String,
    /// Enhanced status code, e.g. `5.1.1`.
    pub status: String,
    /// The remote server's reply, or our own reason.
    pub diagnostic: String,
    /// The host that gave the reply, when one did.
    pub remote_mta: Option<String>,
}

/// Builds the DSN message (CRLF line ends).
pub fn build(
    hostname: &str,
    sender: &str,
    original_mid: u64,
    arrival: chrono::DateTime<chrono::Local>,
    failed: &[Failed],
    original: &[u8],
) -> Vec<u8> {
    let now = chrono::Local::now();
    let boundary = format!("rampart-dsn-{original_mid}-{}", now.timestamp_micros());
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
    ));
    m.push_str(&format!("To: <{sender}>\r\n"));
    m.push_str("Subject: Delivery Status Notification (Failure)\r\n");
    m.push_str(&format!("Date: {}\r\n", now.to_rfc2822()));
    m.push_str(&format!(
        "Message-ID: <dsn.{original_mid}.{}@{hostname}>\r\n",
        now.timestamp_micros()
    ));
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"));
    m.push_str("This is a MIME-encapsulated message.\r\n\r\n");

    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ));
    m.push_str(&format!("This is the mail gateway at {hostname}.\r\n\r\n"));
    m.push_str("Your message could not be delivered to the following recipients:\r\n\r\n");
    for f in failed {
        m.push_str(&format!(
            "  <{}>: {}\r\n",
            clean(&f.recipient),
            clean(&f.diagnostic)
        ));
    }
    m.push_str("\r\nThe headers of your message are attached.\r\n\r\n");

    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
    ));
    m.push_str(&format!("Reporting-MTA: dns; {hostname}\r\n"));
    m.push_str(&format!("X-Rampart-MID: {original_mid}\r\n"));
    m.push_str(&format!("Arrival-Date: {}\r\n", arrival.to_rfc2822()));
    for f in failed {
        m.push_str("\r\n");
        m.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            clean(&f.recipient)
        ));
        m.push_str("Action: failed\r\n");
        m.push_str(&format!("Status: {}\r\n", clean(&f.status)));
        if let Some(r) = &f.remote_mta {
            m.push_str(&format!("Remote-MTA: dns; {}\r\n", clean(r)));
        }
        m.push_str(&format!(
            "Diagnostic-Code: smtp; {}\r\n",
            clean(&f.diagnostic)
        ));
        m.push_str(&format!("Last-Attempt-Date: {}\r\n", now.to_rfc2822()));
    }
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ));
    let mut out = m.into_bytes();
    let head_end = memchr::memmem::find(original, b"\r\n\r\n")
        .map(|i| i + 2)
        .unwrap_or(original.len());
    out.extend_from_slice(original.get(..head_end).unwrap_or_default());
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// Keeps remote text on one header line.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The DSN as a new message for the queue: from the null sender (so it can never cause another
/// DSN) to the original sender, one queue row for the sender's domain.
pub fn notification(
    mid: rampart_store::Mid,
    hostname: &str,
    original: &rampart_store::NewMessageRef<'_>,
    failed: &[Failed],
) -> rampart_store::NewMessage {
    use rampart_store::{NewMessage, NewRecipient, QueueKind, RowState};
    let body = build(
        hostname,
        original.sender,
        original.mid.0,
        original.arrival,
        failed,
        original.body,
    );
    let domain = original
        .sender
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    NewMessage {
        mid,
        icid: 0,
        sender: String::new(),
        remote_ip: "127.0.0.1".into(),
        helo: hostname.to_owned(),
        sender_group: String::new(),
        relayed: true,
        policy: String::new(),
        verdict: "deliver".into(),
        findings: String::new(),
        threats: vec![],
        spam: None,
        virus: None,
        tls: None,
        message_id: None,
        subject: Some("Delivery Status Notification (Failure)".into()),
        body,
        recipients: vec![NewRecipient {
            rcpt_idx: 0,
            recipient: original.sender.to_owned(),
            queue_name: domain,
            kind: QueueKind::Deliver,
            state: RowState::Queued,
        }],
        tracking: vec![format!(
            "Message {mid} is a bounce notification for MID {}",
            original.mid
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_the_three_parts() {
        let failed = [Failed {
            recipient: "u@example.com".into(),
            status: "5.1.1".into(),
            diagnostic: "550 5.1.1 user unknown\r\nforged: header".into(),
            remote_mta: Some("mx.example.com".into()),
        }];
        let original = b"Received: x\r\nSubject: hello\r\n\r\nsecret body\r\n";
        let dsn = String::from_utf8(build(
            "gw.test",
            "a@sender.test",
            42,
            chrono::Local::now(),
            &failed,
            original,
        ))
        .unwrap();
        assert!(dsn.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(dsn.contains(
            "Final-Recipient: rfc822; u@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ));
        assert!(dsn.contains("Diagnostic-Code: smtp; 550 5.1.1 user unknown  forged: header\r\n"));
        assert!(dsn.contains(
            "Content-Type: text/rfc822-headers\r\n\r\nReceived: x\r\nSubject: hello\r\n"
        ));
        assert!(
            !dsn.contains("secret body"),
            "only the headers of the original are returned"
        );
        assert!(dsn.contains("Auto-Submitted: auto-replied"));
        let parsed = mail_parser::MessageParser::default()
            .parse(dsn.as_bytes())
            .unwrap();
        assert_eq!(parsed.parts.len(), 4, "the report and its three parts");
    }
}
