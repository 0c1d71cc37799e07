//! Our `Received:` trace header (RFC 5321 §4.4), prepended to every accepted message.

/// Builds the header, folded over three lines. `for` names the recipient only when there is
/// exactly one, so that one recipient does not learn of the others.
pub(crate) fn header(
    helo: &str,
    peer_ip: &str,
    hostname: &str,
    tls: bool,
    mid: u64,
    single_rcpt: Option<&str>,
) -> Vec<u8> {
    let protocol = if tls { "ESMTPS" } else { "ESMTP" };
    let helo = sanitize(helo);
    let date = chrono::Local::now().to_rfc2822();
    let for_part = match single_rcpt {
        Some(r) => format!("\r\n\tfor <{}>", sanitize(r)),
        None => String::new(),
    };
    format!("Received: from {helo} ([{peer_ip}])\r\n\tby {hostname} with {protocol} id {mid}{for_part};\r\n\t{date}\r\n")
        .into_bytes()
}

/// Keeps client-supplied text from breaking the header: no controls, no parentheses games.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .map(|c| {
            if c == '(' || c == ')' || c == ';' {
                '_'
            } else {
                c
            }
        })
        .take(255)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let h = String::from_utf8(header(
            "client.example",
            "127.0.0.1",
            "rampart.test",
            true,
            42,
            Some("u@example.com"),
        ))
        .unwrap();
        assert!(h.starts_with("Received: from client.example ([127.0.0.1])\r\n\tby rampart.test with ESMTPS id 42\r\n\tfor <u@example.com>;\r\n\t"));
        assert!(h.ends_with("\r\n"));
        let h = String::from_utf8(header("evil)\r\nX: y", "::1", "r", false, 1, None)).unwrap();
        assert!(
            h.starts_with("Received: from evil_X: y ([::1])\r\n\tby r with ESMTP id 1;"),
            "{h}"
        );
    }
}
