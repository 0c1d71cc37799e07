//! Domain patterns shared by the tables that are keyed by destination domain.

/// `example.com`, `.example.com` (strictly below) or `ALL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    Exact(String),
    /// Stored with its leading dot.
    Subdomains(String),
    All,
}

impl Pattern {
    pub(crate) fn parse(s: &str) -> Option<Pattern> {
        let d = s.trim().to_ascii_lowercase();
        if d == "all" {
            Some(Pattern::All)
        } else if let Some(rest) = d.strip_prefix('.') {
            rampart_smtp::Domain::parse(rest)
                .ok()
                .map(|_| Pattern::Subdomains(d.clone()))
        } else {
            rampart_smtp::Domain::parse(&d)
                .ok()
                .map(|dom| Pattern::Exact(dom.as_str().to_owned()))
        }
    }

    pub(crate) fn matches(&self, domain: &str) -> bool {
        match self {
            Pattern::Exact(d) => d == domain,
            Pattern::Subdomains(suffix) => domain.ends_with(suffix.as_str()),
            Pattern::All => true,
        }
    }

    /// Higher is more specific.
    fn rank(&self) -> usize {
        match self {
            Pattern::Exact(_) => usize::MAX,
            Pattern::Subdomains(s) => s.len(),
            Pattern::All => 0,
        }
    }
}

/// The entry whose pattern matches `domain` most specifically.
pub(crate) fn most_specific<'a, T>(
    entries: impl Iterator<Item = (&'a Pattern, &'a T)>,
    domain: &str,
) -> Option<&'a T> {
    let domain = domain.to_ascii_lowercase();
    entries
        .filter(|(p, _)| p.matches(&domain))
        .max_by_key(|(p, _)| p.rank())
        .map(|(_, t)| t)
}
