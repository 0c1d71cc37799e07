//! `RAMPART_*` environment overrides of the configuration file, for containers:
//! `RAMPART_HOSTNAME`, `RAMPART_DATA_DIR`, and `RAMPART_<SECTION>_<KEY>` for the keys of a
//! section (`RAMPART_SMTP_LISTEN=0.0.0.0:2525`, `RAMPART_TDC_TLS=required`). A value is read as a
//! TOML value when it is one (`10`, `true`, `["a", "b"]`), otherwise as a string; list keys also
//! take a comma-separated list. `RAMPART_ADMIN_PASSWORD`, `RAMPART_USER_PASSWORD`, `RAMPART_LOG`
//! and `RAMPART_INITIAL_SETTINGS` are not configuration keys.

const NOT_KEYS: &[&str] = &[
    "RAMPART_ADMIN_PASSWORD",
    "RAMPART_USER_PASSWORD",
    "RAMPART_LOG",
    "RAMPART_INITIAL_SETTINGS",
];
const SECTIONS: &[&str] = &[
    "smtp",
    "web",
    "dns",
    "delivery",
    "tdc",
    "antispam",
    "antivirus",
    "logs",
    "retention",
    "alerts",
    "cluster",
];

/// Returns the configuration text with the overrides from `vars` applied.
pub(crate) fn apply(text: &str, vars: &[(String, String)]) -> Result<String, String> {
    let mut overrides: Vec<(String, String, String)> = Vec::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("RAMPART_") else {
            continue;
        };
        if NOT_KEYS.contains(&name.as_str()) {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let (section, key) = match SECTIONS
            .iter()
            .find(|s| lower.starts_with(&format!("{s}_")))
        {
            Some(s) => (
                s.to_string(),
                lower.get(s.len() + 1..).unwrap_or("").to_owned(),
            ),
            None => (String::new(), lower),
        };
        overrides.push((section, key, value.clone()));
    }
    if overrides.is_empty() {
        return Ok(text.to_owned());
    }
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("not valid TOML: {e}"))?;
    let reference = rampart_config::reference();
    for (section, key, value) in overrides {
        let full = if section.is_empty() {
            key.clone()
        } else {
            format!("{section}.{key}")
        };
        let Some(doc) = reference.iter().find(|f| f.key == full) else {
            return Err(format!(
                "environment variable RAMPART_{} does not name a configuration key (see docs/CONFIG.md)",
                full.replace('.', "_").to_ascii_uppercase()
            ));
        };
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"));
        let value = match parsed {
            Some(v) => v,
            None if doc.default.starts_with('[') => toml::Value::Array(
                value
                    .split(',')
                    .map(|s| toml::Value::String(s.trim().to_owned()))
                    .filter(|v| v.as_str() != Some(""))
                    .collect(),
            ),
            None => toml::Value::String(value),
        };
        let target = if section.is_empty() {
            &mut table
        } else {
            match table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(Default::default()))
            {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(format!(
                        "`{section}` in the configuration file must be a table"
                    ));
                }
            }
        };
        target.insert(key, value);
    }
    toml::to_string(&table).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn overrides_keys_and_sections() {
        let text = apply(
            "hostname = \"a\"\n[smtp]\nmax_recipients = 5\n",
            &vars(&[
                ("RAMPART_HOSTNAME", "gw.example.com"),
                ("RAMPART_SMTP_LISTEN", "0.0.0.0:2525, [::]:2525"),
                ("RAMPART_WEB_LISTEN", "0.0.0.0:8080"),
                ("RAMPART_TDC_MAX_QUEUE_AGE_SECS", "60"),
                ("RAMPART_ADMIN_PASSWORD", "secret"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        let c = rampart_config::Config::parse(&text).unwrap();
        assert_eq!(c.hostname, "gw.example.com");
        assert_eq!(c.smtp.listen.len(), 2);
        assert_eq!(c.smtp.max_recipients, 5);
        assert_eq!(c.web.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.tdc.max_queue_age_secs, 60);
    }

    #[test]
    fn unknown_variables_are_refused() {
        let e = apply("", &vars(&[("RAMPART_SMTP_LISTN", "x")])).unwrap_err();
        assert!(
            e.contains("RAMPART_SMTP_LISTN does not name a configuration key"),
            "{e}"
        );
    }
}
