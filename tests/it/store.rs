//! The storage suite, run against both SQL engines.

use corral::store::{Db, StoreError};
use corral_protocol::Role;

use crate::engine_tests;
use crate::support::{Engine, test_settings, unique};

engine_tests!(users_are_stored_unique_and_roles_change);

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
    let name = unique("u");
    let id = db
        .create_user(&name, "hash", Role::User, 1)
        .await
        .expect("create");
    let dup = db.create_user(&name, "hash2", Role::User, 2).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    let found = db.user_by_name(&name).await.expect("query").expect("found");
    assert_eq!(
        (found.id, found.role, found.password_hash.as_str()),
        (id, Role::User, "hash")
    );
    assert!(
        db.user_by_name("no-such-user")
            .await
            .expect("query")
            .is_none()
    );

    db.set_role(id, Role::Merchant).await.expect("set role");
    let found = db.user_by_id(id).await.expect("query").expect("found");
    assert_eq!(found.role, Role::Merchant);
    assert!(matches!(
        db.set_role(id + 10_000, Role::Admin).await,
        Err(StoreError::NotFound)
    ));
}
