//! The journal message (Cisco's "journaled format"): a new MIME message whose first part is a
//! short envelope report and whose second part is the complete original message as a
//! `message/rfc822` attachment, byte for byte after Rampart's `Received:` header and the
//! remote-IP header SETD reads (`X-IronPort-RemoteIP` by default).

/// What the journal copy reports.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub mid: u64,
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub remote_ip: &'a str,
    pub policy: &'a str,
    pub message_id: Option<&'a str>,
    pub hostname: &'a str,
    pub intake: &'a str,
}

/// The original as SETD should see it: the stored message with `header: remote_ip` inserted
/// right after Rampart's own `Received:` header (the stored message's first field).
pub fn with_remote_ip(original: &[u8], header: &str, remote_ip: &str) -> Vec<u8> {
    rampart_smtp::message::insert_after_first_field(
        original,
        format!("{header}: {remote_ip}\r\n").as_bytes(),
    )
}

/// What goes to `env.intake` for a stored message: the journal message around the original, or
/// with `copy_format` the original itself; either way with the remote-IP header SETD reads.
pub fn body(config: &crate::TdcConfig, env: &Envelope<'_>, stored: &[u8]) -> Vec<u8> {
    let original = with_remote_ip(stored, &config.remote_ip_header, env.remote_ip);
    if config.copy_format {
        original
    } else {
        build(env, &original)
    }
}

/// Builds the journal message around `original` (the stored message, CRLF line ends).
pub fn build(env: &Envelope<'_>, original_with_ip: &[u8]) -> Vec<u8> {
    let boundary = boundary_for(original_with_ip);
    let now = chrono::Local::now();
    let mut m = String::with_capacity(1024);
    m.push_str(&format!(
        "From: Rampart Journal <MAILER-DAEMON@{}>\r\n",
        env.hostname
    ));
    m.push_str(&format!("To: <{}>\r\n", env.intake));
    m.push_str(&format!("Subject: Journal report for MID {}\r\n", env.mid));
    m.push_str(&format!("Date: {}\r\n", now.to_rfc2822()));
    m.push_str(&format!(
        "Message-ID: <journal.{}.{}@{}>\r\n",
        env.mid,
        now.timestamp_micros(),
        env.hostname
    ));
    m.push_str("Auto-Submitted: auto-generated\r\n");
    m.push_str(&format!("X-Rampart-MID: {}\r\n", env.mid));
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str(&format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"));
    m.push_str(&format!("Sender: {}\r\n", one_line(env.sender)));
    m.push_str(&format!(
        "Recipients: {}\r\n",
        env.recipients
            .iter()
            .map(|r| one_line(r))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    m.push_str(&format!("Remote-IP: {}\r\n", one_line(env.remote_ip)));
    m.push_str(&format!("Policy: {}\r\n", one_line(env.policy)));
    m.push_str(&format!("MID: {}\r\n", env.mid));
    m.push_str(&format!(
        "Message-ID: {}\r\n",
        one_line(env.message_id.unwrap_or(""))
    ));
    m.push_str(&format!("\r\n--{boundary}\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"original.eml\"\r\n\r\n"));
    let mut out = m.into_bytes();
    out.extend_from_slice(original_with_ip);
    // The CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1): add one, so the
    // attachment keeps its own last line break.
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// A boundary that does not occur in the original.
fn boundary_for(original: &[u8]) -> String {
    loop {
        let b = format!("rampart-journal-{:016x}", rand::random::<u64>());
        if memchr::memmem::find(original, b.as_bytes()).is_none() {
            return b;
        }
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORED: &[u8] = b"Received: from client ([192.0.2.7])\r\n\tby gw.test with ESMTP id 42;\r\n\tSat, 28 Nov 2026 06:00:00 +0000\r\nFrom: a@sender.test\r\nSubject: hi\r\nMessage-ID: <x@sender.test>\r\n\r\nbody line\r\n--rampart-journal-not-a-boundary\r\n";

    #[test]
    fn remote_ip_header_goes_after_our_received() {
        let out = with_remote_ip(STORED, "X-IronPort-RemoteIP", "192.0.2.7");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Received: from client ([192.0.2.7])\r\n\tby gw.test with ESMTP id 42;\r\n\tSat, 28 Nov 2026 06:00:00 +0000\r\nX-IronPort-RemoteIP: 192.0.2.7\r\nFrom: a@sender.test\r\n"), "{text}");
        assert!(text.ends_with("body line\r\n--rampart-journal-not-a-boundary\r\n"));
    }

    #[test]
    fn journal_parses_and_carries_the_original_byte_for_byte() {
        let recipients = vec!["u@example.com".to_string(), "v@example.com".to_string()];
        let env = Envelope {
            mid: 42,
            sender: "a@sender.test",
            recipients: &recipients,
            remote_ip: "192.0.2.7",
            policy: "DEFAULT",
            message_id: Some("<x@sender.test>"),
            hostname: "gw.test",
            intake: "journal@intake.test",
        };
        let original = with_remote_ip(STORED, "X-IronPort-RemoteIP", "192.0.2.7");
        let journal = build(&env, &original);
        let parsed = mail_parser::MessageParser::default()
            .parse(&journal)
            .unwrap();
        assert_eq!(parsed.attachment_count(), 1);
        let attached = parsed.attachment(0).unwrap();
        assert_eq!(
            attached.contents(),
            original.as_slice(),
            "the attachment is the original byte for byte"
        );
        let report = parsed.body_text(0).unwrap();
        for line in [
            "Sender: a@sender.test",
            "Recipients: u@example.com, v@example.com",
            "Remote-IP: 192.0.2.7",
            "Policy: DEFAULT",
            "MID: 42",
            "Message-ID: <x@sender.test>",
        ] {
            assert!(report.contains(line), "{line} in {report}");
        }
    }
}
