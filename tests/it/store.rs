//! The storage suite, run against both SQL engines.

use std::sync::Arc;

use corral::config::BatchConfig;
use corral::store::sql::chat::SqlMessageStore;
use corral::store::{Db, Repos, StoreError};
use corral_actors::ports::chat::{Appended, ChatStoreError, MessageStore, NewMessage};
use corral_protocol::Role;

use crate::engine_tests;
use crate::support::{Engine, test_settings, unique};

engine_tests!(
    users_are_stored_unique_and_roles_change,
    appends_queued_together_number_rooms_apart_and_keep_repeats_once,
    a_voided_key_is_decided_again_once_and_a_stale_commit_never_lands,
);

async fn db(engine: Engine, dir: &std::path::Path) -> Db {
    let settings = test_settings(engine, dir).await;
    let db = Db::connect(&settings.database, dir).await.expect("connect");
    db.migrate().await.expect("migrate");
    // Migrations are idempotent: a restart applies nothing twice.
    db.migrate().await.expect("migrate again");
    db
}

async fn users_are_stored_unique_and_roles_change(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db(engine, dir.path()).await;
    let repos = Repos::new(&db);
    let name = unique("u");
    let id = repos
        .accounts
        .create_user(&name, "hash", Role::User, 1)
        .await
        .expect("create");
    let dup = repos
        .accounts
        .create_user(&name, "hash2", Role::User, 2)
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    let found = repos
        .accounts
        .user_by_name(&name)
        .await
        .expect("query")
        .expect("found");
    assert_eq!(
        (found.id, found.role, found.password_hash.as_str()),
        (id, Role::User, "hash")
    );
    assert!(
        repos
            .accounts
            .user_by_name("no-such-user")
            .await
            .expect("query")
            .is_none()
    );

    repos
        .accounts
        .set_role(id, Role::Merchant)
        .await
        .expect("set role");
    let found = repos
        .accounts
        .user_by_id(id)
        .await
        .expect("query")
        .expect("found");
    assert_eq!(found.role, Role::Merchant);
    assert!(matches!(
        repos.accounts.set_role(id + 10_000, Role::Admin).await,
        Err(StoreError::NotFound)
    ));
}

/// Appends queued together over several rooms (grouped into as few commits as the batcher
/// makes; how many is not observable here, so not claimed): each room's seqs run on from its
/// own `last_seq` without gaps, a client key repeated among them or already stored is stored
/// once (the repeat gets the original), and a missing room fails alone.
async fn appends_queued_together_number_rooms_apart_and_keep_repeats_once(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = db(engine, dir.path()).await;
    let repos = Repos::new(&db);
    let user = repos
        .accounts
        .create_user(&unique("u"), "hash", Role::User, 1)
        .await
        .expect("user");
    let mut rooms = Vec::new();
    for i in 0..3 {
        rooms.push(
            repos
                .rooms
                .create_room(user, &format!("room {i}"), false, 0)
                .await
                .expect("room"),
        );
    }
    let config = BatchConfig {
        max: 512,
        linger: std::time::Duration::ZERO,
        queue: 1024,
    };
    let store: Arc<dyn MessageStore> = SqlMessageStore::start(db.clone(), config);
    let send = |room: i64, key: &str| {
        let store = store.clone();
        let message = NewMessage {
            room,
            from: user,
            client_msg_id: key.to_string(),
            text: format!("{room}/{key}"),
            ts: 7,
        };
        async move { store.append(message).await }
    };
    // Room 0 already has two messages.
    for key in ["a", "b"] {
        assert!(matches!(send(rooms[0], key).await, Ok(Appended::Stored(_))));
    }
    let mut batch = Vec::new();
    for i in 0..20 {
        let room = rooms[i % 3];
        batch.push(send(room, &format!("k{}", i / 6)));
    }
    batch.push(send(rooms[0], "a"));
    batch.push(send(-1, "nowhere"));
    let outcomes = futures_util::future::join_all(batch).await;

    let mut per_room: std::collections::HashMap<i64, Vec<u64>> = Default::default();
    let mut stored = std::collections::HashMap::new();
    for outcome in &outcomes[..20] {
        match outcome.as_ref().expect("appended") {
            Appended::Stored(m) => {
                per_room.entry(m.room).or_default().push(m.seq);
                assert!(
                    stored
                        .insert((m.room, m.client_msg_id.clone()), m.seq)
                        .is_none()
                );
            }
            Appended::Duplicate(m) => {
                assert_eq!(stored.get(&(m.room, m.client_msg_id.clone())), Some(&m.seq));
            }
        }
    }
    for seqs in per_room.values_mut() {
        seqs.sort_unstable();
    }
    // Message i goes to room i % 3 with key i / 6: i and i + 3 repeat a pair.
    let firsts = |room: usize| {
        let keys: std::collections::BTreeSet<usize> =
            (0..20).filter(|i| i % 3 == room).map(|i| i / 6).collect();
        keys.len() as u64
    };
    assert_eq!(per_room[&rooms[0]], (3..3 + firsts(0)).collect::<Vec<_>>());
    assert_eq!(per_room[&rooms[1]], (1..1 + firsts(1)).collect::<Vec<_>>());
    assert_eq!(per_room[&rooms[2]], (1..1 + firsts(2)).collect::<Vec<_>>());
    match outcomes[20].as_ref().expect("repeat of an older key") {
        Appended::Duplicate(m) => assert_eq!(
            (m.seq, m.text.as_str()),
            (1, format!("{}/a", rooms[0]).as_str())
        ),
        other => panic!("expected the original, got {other:?}"),
    }
    assert!(
        matches!(outcomes[21], Err(ChatStoreError::NotFound)),
        "{:?}",
        outcomes[21]
    );
    let stored_rows = store.range(rooms[0], 0, 100).await.expect("range");
    assert_eq!(stored_rows.len() as u64, 2 + firsts(0));
    assert_eq!(
        repos
            .rooms
            .room(rooms[0])
            .await
            .expect("room")
            .expect("exists")
            .last_seq,
        2 + firsts(0)
    );
}

/// Reconciliation voids a decision whose row came too late; a retry of the key decides it
/// afresh under the next attempt. The rows let exactly one decision of a key stand: a void
/// replaces only a void of an earlier attempt, a revive only a void of an earlier attempt, and
/// a stale first commit finds whatever stands.
async fn a_voided_key_is_decided_again_once_and_a_stale_commit_never_lands(engine: Engine) {
    use corral::store::sql::claims::{ClaimRows, KeyRow, NewHold};
    use corral_protocol::ops::ClaimStatus;

    let dir = tempfile::tempdir().expect("tempdir");
    let db = db(engine, dir.path()).await;
    let user = Repos::new(&db)
        .accounts
        .create_user(&unique("v"), "hash", Role::User, 1)
        .await
        .expect("user");
    let rows = ClaimRows::start(db.clone(), 1);
    let activity = 7;
    let hold = |attempt: i64, item: i64| NewHold {
        activity,
        item,
        user,
        key: "k".into(),
        expires_at: 60_000,
        now: 10,
        epoch: None,
        attempt,
        coupon: false,
    };
    let stands = |row: &KeyRow| {
        (
            row.claim.status,
            row.claim.attempt,
            row.voided,
            row.claim.item,
        )
    };

    assert!(rows.void(activity, 1, user, "k", 1, 5).await.unwrap());
    assert!(
        !rows.void(activity, 1, user, "k", 1, 6).await.unwrap(),
        "voided once"
    );
    // The first decision's late commit lands nothing.
    let late = rows.insert(hold(1, 1)).await.unwrap();
    assert_eq!(stands(&late), (ClaimStatus::Cancelled, 1, true, 1));
    // Attempt 2 was decided, then voided before its revive committed: the revive lands nothing.
    assert!(rows.void(activity, 2, user, "k", 2, 7).await.unwrap());
    let stale = rows.revive(&hold(2, 2)).await.unwrap();
    assert_eq!(stands(&stale), (ClaimStatus::Cancelled, 2, true, 1));
    // Attempt 3 holds; nothing earlier can replace or void it.
    let fresh = rows.revive(&hold(3, 3)).await.unwrap();
    assert_eq!(stands(&fresh), (ClaimStatus::Held, 3, false, 3));
    assert!(!rows.void(activity, 3, user, "k", 3, 8).await.unwrap());
    assert!(!rows.void(activity, 2, user, "k", 2, 8).await.unwrap());
    assert_eq!(
        stands(&rows.insert(hold(1, 1)).await.unwrap()),
        stands(&fresh)
    );
    assert_eq!(
        stands(&rows.revive(&hold(2, 2)).await.unwrap()),
        stands(&fresh)
    );
    let standing = rows.standings(activity, &[(user, "k")]).await.unwrap();
    let standing = standing[&(user, "k".to_string())];
    assert_eq!((standing.status, standing.attempt), (ClaimStatus::Held, 3));
    // A rebuilt arbiter pins the key's first decision and holds the slot under the third.
    let restored: Vec<(String, bool)> = rows
        .restorable(activity)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.active))
        .collect();
    assert_eq!(
        restored,
        vec![("k".to_string(), false), ("k\u{0}3".to_string(), true)]
    );
}
