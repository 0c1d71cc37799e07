//! The change service against a real SQLite store: compare-and-swap, validation, the audit
//! record, the running snapshot, and staging with conflicts.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rampart_settings::{RatAction, RatEntry, Settings};
use rampart_store::{Audit, Store};

use super::*;

async fn setup() -> (tempfile::TempDir, Store, Changes, SharedSettings) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("rampart.db")).await.unwrap();
    let running: SharedSettings = Arc::new(ArcSwap::from_pointee(
        Settings::default().compile().unwrap(),
    ));
    let changes = Changes::new(store.clone(), Some(running.clone()));
    for name in ["alice", "bob"] {
        let user = rampart_store::User {
            name: name.into(),
            password_hash: String::new(),
            role: rampart_store::Role::Admin,
        };
        store.put_user(&user).await.unwrap();
    }
    (dir, store, changes, running)
}

fn accept(domain: &str) -> RatEntry {
    RatEntry {
        domain: domain.into(),
        action: RatAction::Accept,
    }
}

fn audit() -> Audit {
    Audit::new("admin", "api", "RAT edited")
}

#[tokio::test]
async fn a_change_is_saved_audited_and_swapped_in() {
    let (_dir, store, changes, running) = setup().await;
    let before = store.settings_generation().await.unwrap();
    let saved = changes
        .apply(&audit(), None, |s| {
            s.rat.push(accept("example.com"));
            Ok::<_, String>(s.rat.len())
        })
        .await
        .unwrap();
    assert_eq!(saved.value, 1);
    assert!(saved.generation > before);
    assert_eq!(
        store.load_settings().await.unwrap().rat,
        [accept("example.com")]
    );
    assert_eq!(running.load().settings().rat, [accept("example.com")]);
    let log = store.audit_log(10).await.unwrap();
    assert_eq!(log[0].audit.changes, ["RAT edited"]);
}

#[tokio::test]
async fn an_invalid_change_saves_nothing() {
    let (_dir, store, changes, running) = setup().await;
    let before = store.settings_generation().await.unwrap();
    let err = changes
        .apply(&audit(), None, |s| {
            s.rat.push(accept("not a domain!"));
            Ok::<_, String>(())
        })
        .await
        .unwrap_err();
    let ChangeError::Invalid(problems) = err else {
        panic!("{err:?}")
    };
    assert!(
        problems
            .iter()
            .any(|p| p.at == "rat[0]" && p.message.contains("not a domain!")),
        "{problems:?}"
    );
    assert_eq!(store.settings_generation().await.unwrap(), before);
    assert!(running.load().settings().rat.is_empty());

    let err = changes
        .apply(&audit(), None, |_| Err::<(), _>("refused".to_owned()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChangeError::Edit(ref e) if e == "refused"),
        "{err:?}"
    );
    assert_eq!(store.settings_generation().await.unwrap(), before);
}

#[tokio::test]
async fn another_writer_is_never_overwritten() {
    let (_dir, store, changes, _running) = setup().await;
    let read_at = store.settings_generation().await.unwrap();
    // Another process (the CLI) saves after the caller read the settings.
    let mut other = store.load_settings().await.unwrap();
    other.rat.push(accept("other.test"));
    store
        .save_settings(&other, &Audit::new("admin", "cli", "loadconfig"))
        .await
        .unwrap();
    // With the generation it read (If-Match), the caller is refused ...
    let err = changes
        .apply(&audit(), Some(read_at), |s| {
            s.rat.push(accept("mine.test"));
            Ok::<_, String>(())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChangeError::Stale { expected, .. } if expected == read_at),
        "{err:?}"
    );
    // ... without, its edit is applied to the new settings: both survive.
    changes
        .apply(&audit(), None, |s| {
            s.rat.push(accept("mine.test"));
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    assert_eq!(
        store.load_settings().await.unwrap().rat,
        [accept("other.test"), accept("mine.test")]
    );
}

#[tokio::test]
async fn staged_changes_commit_together_or_conflict() {
    let (_dir, store, changes, running) = setup().await;
    let mut working = changes.working("alice").await.unwrap();
    working.rat.push(accept("staged.test"));
    changes
        .stage("alice", &working, &["rat"], "RAT: added staged.test")
        .await
        .unwrap()
        .unwrap();
    // Staged, not live.
    assert!(running.load().settings().rat.is_empty());
    assert_eq!(
        changes.working("alice").await.unwrap().rat,
        [accept("staged.test")]
    );
    assert!(changes.working("bob").await.unwrap().rat.is_empty());

    // An invalid staged edit is refused with its problems and not recorded.
    let mut bad = working.clone();
    bad.rat.push(accept("no good!"));
    let problems = changes
        .stage("alice", &bad, &["rat"], "RAT: added no good!")
        .await
        .unwrap()
        .unwrap_err();
    assert!(!problems.is_empty());

    let saved = changes.commit("alice", "first").await.unwrap();
    assert_eq!(saved.value, 1);
    assert_eq!(running.load().settings().rat, [accept("staged.test")]);
    let log = store.audit_log(1).await.unwrap();
    assert_eq!(log[0].audit.comment, "first");
    assert_eq!(log[0].audit.changes, ["RAT: added staged.test"]);
    assert_eq!(
        changes.commit("alice", "").await.unwrap().value,
        0,
        "nothing left"
    );

    // Bob stages a RAT edit; the RAT then changes under him: his commit conflicts.
    let mut bobs = changes.working("bob").await.unwrap();
    bobs.rat.push(accept("bob.test"));
    changes
        .stage("bob", &bobs, &["rat"], "RAT: added bob.test")
        .await
        .unwrap()
        .unwrap();
    changes
        .apply(&audit(), None, |s| {
            s.rat.clear();
            Ok::<_, String>(())
        })
        .await
        .unwrap();
    let err = changes.commit("bob", "").await.unwrap_err();
    let ChangeError::Edit(Conflicts(lines)) = err else {
        panic!("{err:?}")
    };
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("The Recipient Access Table was changed by someone else"));
    assert!(
        running.load().settings().rat.is_empty(),
        "nothing committed"
    );
    changes.abandon("bob").await.unwrap();
    assert!(changes.working("bob").await.unwrap().rat.is_empty());
}
