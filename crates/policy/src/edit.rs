//! Edits of a policy table with the rules every interface shares (REST API, CLI, web UI): names
//! are unique regardless of case, `DEFAULT` cannot be renamed, moved or deleted and stays last.

use crate::table::{DEFAULT_POLICY, MailPolicy};

/// Why an edit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("no policy named {0:?}")]
    NotFound(String),
    #[error("a policy named {0:?} exists already")]
    Duplicate(String),
    #[error("{0}")]
    Invalid(String),
}

/// Adds `policy` at `position` (default: just above DEFAULT).
pub fn add(
    table: &mut Vec<MailPolicy>,
    policy: MailPolicy,
    position: Option<usize>,
) -> Result<(), EditError> {
    if table
        .iter()
        .any(|p| p.name.eq_ignore_ascii_case(&policy.name))
    {
        return Err(EditError::Duplicate(policy.name));
    }
    let last = table.len().saturating_sub(1);
    let at = position.unwrap_or(last);
    if at > last {
        return Err(EditError::Invalid(format!(
            "position {at} is out of range: 0..={last} (DEFAULT stays last)"
        )));
    }
    table.insert(at, policy);
    Ok(())
}

/// Replaces the policy called `name` (it may be renamed, except DEFAULT), moving it to
/// `position` when given.
pub fn replace(
    table: &mut Vec<MailPolicy>,
    name: &str,
    policy: MailPolicy,
    position: Option<usize>,
) -> Result<(), EditError> {
    let idx = index(table, name)?;
    if name == DEFAULT_POLICY && policy.name != name {
        return Err(EditError::Invalid(
            "the DEFAULT policy cannot be renamed".into(),
        ));
    }
    if policy.name != name
        && table
            .iter()
            .enumerate()
            .any(|(i, p)| i != idx && p.name.eq_ignore_ascii_case(&policy.name))
    {
        return Err(EditError::Duplicate(policy.name));
    }
    // Check the new place before touching the table: a refused edit changes nothing.
    let remaining = table.len() - 1;
    let last = remaining.saturating_sub(usize::from(name != DEFAULT_POLICY));
    if name == DEFAULT_POLICY && position.is_some_and(|p| p != remaining) {
        return Err(EditError::Invalid("the DEFAULT policy stays last".into()));
    }
    if let Some(p) = position.filter(|&p| p > last) {
        return Err(EditError::Invalid(format!(
            "position {p} is out of range: 0..={last} (DEFAULT stays last)"
        )));
    }
    table.remove(idx);
    table.insert(position.unwrap_or(idx).min(table.len()), policy);
    Ok(())
}

/// Deletes the policy called `name`; DEFAULT cannot be deleted.
pub fn delete(table: &mut Vec<MailPolicy>, name: &str) -> Result<MailPolicy, EditError> {
    if name == DEFAULT_POLICY {
        return Err(EditError::Invalid(
            "the DEFAULT policy cannot be deleted".into(),
        ));
    }
    let idx = index(table, name)?;
    Ok(table.remove(idx))
}

/// Moves the policy called `name` one place up (`up`) or down; DEFAULT and the edges stay put.
pub fn shift(table: &mut [MailPolicy], name: &str, up: bool) -> Result<(), EditError> {
    if name == DEFAULT_POLICY {
        return Err(EditError::Invalid("the DEFAULT policy stays last".into()));
    }
    let idx = index(table, name)?;
    let other = if up {
        idx.checked_sub(1)
    } else {
        Some(idx + 1)
    };
    // The last place belongs to DEFAULT.
    match other.filter(|&o| o + 1 < table.len()) {
        Some(o) => {
            table.swap(idx, o);
            Ok(())
        }
        None => Err(EditError::Invalid(format!(
            "{name:?} is already the {} policy it can be",
            if up { "first" } else { "last" }
        ))),
    }
}

/// The position of the policy called `name`.
pub fn index(table: &[MailPolicy], name: &str) -> Result<usize, EditError> {
    table
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| EditError::NotFound(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> MailPolicy {
        MailPolicy {
            name: name.into(),
            ..MailPolicy::default_policy()
        }
    }

    fn names(t: &[MailPolicy]) -> Vec<&str> {
        t.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn add_replace_shift_delete() {
        let mut t = vec![MailPolicy::default_policy()];
        add(&mut t, named("a"), None).unwrap();
        add(&mut t, named("b"), None).unwrap();
        assert_eq!(names(&t), ["a", "b", "DEFAULT"]);
        assert_eq!(
            add(&mut t, named("A"), None),
            Err(EditError::Duplicate("A".into()))
        );
        assert!(matches!(
            add(&mut t, named("c"), Some(3)),
            Err(EditError::Invalid(_))
        ));
        add(&mut t, named("c"), Some(0)).unwrap();
        assert_eq!(names(&t), ["c", "a", "b", "DEFAULT"]);
        shift(&mut t, "a", true).unwrap();
        assert_eq!(names(&t), ["a", "c", "b", "DEFAULT"]);
        assert!(shift(&mut t, "a", true).is_err());
        assert!(shift(&mut t, "b", false).is_err(), "DEFAULT stays last");
        assert!(shift(&mut t, "DEFAULT", true).is_err());
        replace(&mut t, "c", named("d"), Some(2)).unwrap();
        assert_eq!(names(&t), ["a", "b", "d", "DEFAULT"]);
        assert_eq!(
            replace(&mut t, "d", named("B"), None),
            Err(EditError::Duplicate("B".into()))
        );
        assert!(replace(&mut t, "DEFAULT", named("X"), None).is_err());
        assert!(replace(&mut t, "d", named("d"), Some(3)).is_err());
        assert_eq!(
            names(&t),
            ["a", "b", "d", "DEFAULT"],
            "a refused edit changes nothing"
        );
        replace(&mut t, "DEFAULT", MailPolicy::default_policy(), None).unwrap();
        assert_eq!(names(&t), ["a", "b", "d", "DEFAULT"]);
        assert!(delete(&mut t, "DEFAULT").is_err());
        assert_eq!(delete(&mut t, "zz"), Err(EditError::NotFound("zz".into())));
        delete(&mut t, "b").unwrap();
        assert_eq!(names(&t), ["a", "d", "DEFAULT"]);
    }
}
