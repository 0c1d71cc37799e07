//! TLS names as AsyncOS logs them (OpenSSL spelling), so that `TLS success protocol TLSv1.2
//! cipher ECDHE-RSA-AES128-GCM-SHA256` reads the same as on an appliance. Takes rustls' names
//! as strings so that this crate stays free of TLS dependencies.

/// `TLSv1_3` (rustls' debug name) → `TLSv1.3`.
pub fn protocol_name(rustls_name: &str) -> String {
    rustls_name.replace('_', ".")
}

/// IANA/rustls cipher suite name → OpenSSL name; unknown names are returned unchanged.
pub fn cipher_name(rustls_name: &str) -> String {
    let name = match rustls_name {
        "TLS13_AES_128_GCM_SHA256" => "TLS_AES_128_GCM_SHA256",
        "TLS13_AES_256_GCM_SHA384" => "TLS_AES_256_GCM_SHA384",
        "TLS13_CHACHA20_POLY1305_SHA256" => "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => "ECDHE-ECDSA-CHACHA20-POLY1305",
        other => other,
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(protocol_name("TLSv1_2"), "TLSv1.2");
        assert_eq!(
            cipher_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            "ECDHE-RSA-AES128-GCM-SHA256"
        );
        assert_eq!(cipher_name("SOMETHING_NEW"), "SOMETHING_NEW");
    }
}
