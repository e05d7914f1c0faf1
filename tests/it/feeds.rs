//! Social feeds over real WebSocket and HTTP clients on both SQL engines: the follow graph,
//! timelines and their paging, live pushes, deletes, like/comment counters under concurrency,
//! and animal updates for users who follow an animal.

use std::collections::HashSet;
use std::time::Duration;

use bytestring::ByteString;
use corral_actors::feeds;
use corral_protocol::Role;
use serde_json::{Value, json};

use crate::engine_tests;
use crate::support::{Engine, QUIET, TestApp, WsClient, unique};

engine_tests!(
    follow_and_unfollow_shape_timelines_and_pushes,
    pagination_is_stable_while_others_post,
    pushes_reach_every_device_of_online_followers_only,
    large_audiences_are_matched_against_online_users,
    deleted_posts_leave_timelines,
    counters_stay_exact_under_concurrent_likes_and_comments,
    tagged_animal_updates_reach_animal_followers,
    bad_posts_and_pages_are_refused,
);

/// A user created straight in the store (no password hashing) with a token for `role`.
async fn member(app: &TestApp, role: Role) -> (i64, String) {
    let name = unique("f");
    let name = &name[..name.len().min(32)];
    let id = app
        .state
        .repos
        .accounts
        .create_user(name, "-", role, corral_actors::clock::now_ms())
        .await
        .expect("create user");
    let token = app.state.keys.issue(id, role).expect("token");
    (id, token)
}

async fn post(ws: &mut WsClient, text: &str) -> i64 {
    let ok = ws
        .request("feed.post", json!({ "text": text }))
        .await
        .expect("post");
    ok["post_id"].as_i64().expect("post_id")
}

fn post_ids(page: &Value) -> Vec<i64> {
    page["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .map(|p| p["post_id"].as_i64().expect("post_id"))
        .collect()
}

async fn timeline(ws: &mut WsClient, before: Option<i64>, limit: u32) -> Value {
    ws.request("feed.timeline", json!({ "before": before, "limit": limit }))
        .await
        .expect("timeline")
}

async fn follow_and_unfollow_shape_timelines_and_pushes(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (alice, alice_token) = member(&app, Role::User).await;
    let (bob, bob_token) = member(&app, Role::User).await;
    let mut a = app.client(Some(&alice_token)).await;
    let mut b = app.client(Some(&bob_token)).await;

    let before_follow = post(&mut a, "before the follow").await;
    b.request("follow", json!({ "user": alice }))
        .await
        .expect("follow");
    // Following twice is harmless.
    b.request("follow", json!({ "user": alice }))
        .await
        .expect("follow again");
    let err = b.request("follow", json!({ "user": bob })).await.err();
    assert_eq!(err.map(|e| e.code.as_str()), Some("bad_request"));
    let err = b.request("follow", json!({ "user": 987_654 })).await.err();
    assert_eq!(err.map(|e| e.code.as_str()), Some("not_found"));

    let (status, profile) = app
        .get(&format!("/api/v1/users/{alice}"), Some(&bob_token))
        .await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["followers"], 1);
    assert_eq!(profile["following"], 0);
    let (_, list) = app
        .get(
            &format!("/api/v1/users/{alice}/followers"),
            Some(&bob_token),
        )
        .await;
    assert_eq!(list["users"], json!([bob]));
    let (_, list) = app
        .get(&format!("/api/v1/users/{bob}/following"), Some(&bob_token))
        .await;
    assert_eq!(list["users"], json!([alice]));

    let followed = post(&mut a, "hello followers").await;
    // The first post's fan-out may still have been running when bob followed: skip it.
    let mut push = b.next_event("feed.post").await.expect("push to follower");
    if push["post"]["post_id"] == before_follow {
        push = b.next_event("feed.post").await.expect("push to follower");
    }
    assert_eq!(push["post"]["post_id"], followed);
    assert_eq!(push["post"]["author"], alice);
    assert_eq!(push["post"]["text"], "hello followers");
    let own = post(&mut b, "my own").await;
    let page = timeline(&mut b, None, 10).await;
    assert_eq!(post_ids(&page), vec![own, followed, before_follow]);

    // Unfollow over HTTP: the timeline loses alice and her next post is not pushed.
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/users/{alice}/follow")))
        .bearer_auth(&bob_token)
        .send()
        .await
        .expect("unfollow");
    assert_eq!(resp.status().as_u16(), 200);
    let after = post(&mut a, "after the unfollow").await;
    // A late push of the post made before the follow may still come; `after` must not.
    let deadline = tokio::time::Instant::now() + QUIET;
    while let Some(push) = b.next_event_until("feed.post", deadline).await {
        assert_eq!(push["post"]["post_id"], before_follow, "unexpected {push}");
    }
    assert_eq!(post_ids(&timeline(&mut b, None, 10).await), vec![own]);
    // Alice's own profile feed still has everything, newest first.
    let profile = b
        .request("feed.profile", json!({ "user": alice, "limit": 10 }))
        .await
        .expect("profile");
    assert_eq!(post_ids(&profile), vec![after, followed, before_follow]);
    let (_, profile) = app
        .get(&format!("/api/v1/users/{alice}"), Some(&bob_token))
        .await;
    assert_eq!(profile["followers"], 0);

    // Following back over HTTP restores the timeline.
    let (status, _) = app
        .post(
            &format!("/api/v1/users/{alice}/follow"),
            Some(&bob_token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, page) = app.get("/api/v1/timeline?limit=2", Some(&bob_token)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(post_ids(&page), vec![after, own]);
    assert_eq!(page["next_before"], own);
}

async fn pagination_is_stable_while_others_post(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, reader_token) = member(&app, Role::User).await;
    let mut reader = app.client(Some(&reader_token)).await;
    let mut authors = Vec::new();
    for _ in 0..3 {
        let (id, token) = member(&app, Role::User).await;
        reader
            .request("follow", json!({ "user": id }))
            .await
            .expect("follow");
        authors.push(app.client(Some(&token)).await);
    }
    let mut existing = Vec::new();
    for i in 0..24 {
        existing.push(post(&mut authors[i % 3], &format!("post {i}")).await);
    }
    existing.reverse();

    // Page through while the authors keep posting concurrently.
    let writers: Vec<_> = authors
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                for i in 0..10 {
                    post(&mut ws, &format!("new {i}")).await;
                }
            })
        })
        .collect();
    let mut paged: Vec<i64> = Vec::new();
    let mut before = None;
    loop {
        let page = timeline(&mut reader, before, 5).await;
        paged.extend(post_ids(&page));
        match page["next_before"].as_i64() {
            Some(next) => before = Some(next),
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    // Posts made before a page was read may show on it (or a later one): keep only the ones
    // that existed before the paging began. Nothing is repeated, everything newest first.
    assert!(
        paged.windows(2).all(|w| w[0] > w[1]),
        "pages repeat or reorder posts: {paged:?}"
    );
    let seen: Vec<i64> = paged.into_iter().filter(|id| *id <= existing[0]).collect();
    assert_eq!(seen, existing, "no post skipped or repeated, newest first");
}

async fn pushes_reach_every_device_of_online_followers_only(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (author, author_token) = member(&app, Role::User).await;
    let (_, fan_token) = member(&app, Role::User).await;
    let (_, other_token) = member(&app, Role::User).await;
    let mut writer = app.client(Some(&author_token)).await;
    let mut author_phone = app.client(Some(&author_token)).await;
    let mut phone = app.client(Some(&fan_token)).await;
    let mut laptop = app.client(Some(&fan_token)).await;
    let mut stranger = app.client(Some(&other_token)).await;
    phone
        .request("follow", json!({ "user": author }))
        .await
        .expect("follow");

    let id = post(&mut writer, "to every device").await;
    for device in [&mut phone, &mut laptop] {
        let push = device.next_event("feed.post").await.expect("push");
        assert_eq!(push["post"]["post_id"], id);
    }
    // Exactly one push per device of the follower; none to the author's devices or a stranger.
    futures_util::join!(
        stranger.assert_silent("feed.post"),
        author_phone.assert_silent("feed.post"),
        phone.assert_silent("feed.post"),
        laptop.assert_silent("feed.post"),
    );

    // Small audience: the author's followers are scanned.
    let frame = ByteString::from("{\"ev\":\"probe\"}");
    let report = feeds::fan_out(&app.state.hub, author, None, &frame, &Default::default())
        .await
        .expect("fan out");
    assert!(!report.scanned_online);
    assert_eq!(report.users, 1);
    assert!(phone.next_event("probe").await.is_some());
    assert!(laptop.next_event("probe").await.is_some());
}

async fn large_audiences_are_matched_against_online_users(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (author, author_token) = member(&app, Role::User).await;
    let social = &app.state.hub.social;
    let now = corral_actors::clock::now_ms();
    // Many offline followers, two online ones (one with two devices), one online stranger.
    for _ in 0..40 {
        let (id, _) = member(&app, Role::User).await;
        social.follow(id, author, now).await.expect("follow");
    }
    let (fan1, fan1_token) = member(&app, Role::User).await;
    let (fan2, fan2_token) = member(&app, Role::User).await;
    let (_, other_token) = member(&app, Role::User).await;
    for fan in [fan1, fan2] {
        social.follow(fan, author, now).await.expect("follow");
    }
    let mut writer = app.client(Some(&author_token)).await;
    let mut fan1_a = app.client(Some(&fan1_token)).await;
    let mut fan1_b = app.client(Some(&fan1_token)).await;
    let mut fan2_ws = app.client(Some(&fan2_token)).await;
    let mut stranger = app.client(Some(&other_token)).await;

    let id = post(&mut writer, "to the crowd").await;
    for device in [&mut fan1_a, &mut fan1_b, &mut fan2_ws] {
        let push = device.next_event("feed.post").await.expect("push");
        assert_eq!(push["post"]["post_id"], id);
    }
    stranger.assert_silent("feed.post").await;

    let frame = ByteString::from("{\"ev\":\"probe\"}");
    let report = feeds::fan_out(&app.state.hub, author, None, &frame, &Default::default())
        .await
        .expect("fan out");
    assert!(report.scanned_online, "42 followers vs 4 online users");
    assert_eq!(report.users, 2);
}

async fn deleted_posts_leave_timelines(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (author, author_token) = member(&app, Role::User).await;
    let (_, fan_token) = member(&app, Role::User).await;
    let mut a = app.client(Some(&author_token)).await;
    let mut f = app.client(Some(&fan_token)).await;
    f.request("follow", json!({ "user": author }))
        .await
        .expect("follow");
    let keep = post(&mut a, "keep").await;
    let gone = post(&mut a, "gone").await;
    assert_eq!(
        post_ids(&timeline(&mut f, None, 10).await),
        vec![gone, keep]
    );

    let err = f
        .request("feed.delete", json!({ "post": gone }))
        .await
        .err();
    assert_eq!(err.map(|e| e.code.as_str()), Some("forbidden"));
    a.request("feed.delete", json!({ "post": gone }))
        .await
        .expect("delete");
    let err = a
        .request("feed.delete", json!({ "post": gone }))
        .await
        .err();
    assert_eq!(err.map(|e| e.code.as_str()), Some("not_found"));

    assert_eq!(post_ids(&timeline(&mut f, None, 10).await), vec![keep]);
    assert_eq!(post_ids(&timeline(&mut a, None, 10).await), vec![keep]);
    let profile = f
        .request("feed.profile", json!({ "user": author, "limit": 10 }))
        .await
        .expect("profile");
    assert_eq!(post_ids(&profile), vec![keep]);
    let err = f.request("feed.like", json!({ "post": gone })).await.err();
    assert_eq!(err.map(|e| e.code.as_str()), Some("not_found"));
    let (status, _) = app
        .get(&format!("/api/v1/posts/{gone}"), Some(&fan_token))
        .await;
    assert_eq!(status, 404);

    // Delete over HTTP too.
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/posts/{keep}")))
        .bearer_auth(&author_token)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(post_ids(&timeline(&mut f, None, 10).await).is_empty());
}

async fn counters_stay_exact_under_concurrent_likes_and_comments(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (author, author_token) = member(&app, Role::User).await;
    let mut a = app.client(Some(&author_token)).await;
    let id = post(&mut a, "like me").await;

    const LIKERS: usize = 24;
    let mut clients = Vec::new();
    let mut likers = Vec::new();
    for _ in 0..LIKERS {
        let (user, token) = member(&app, Role::User).await;
        likers.push(user);
        clients.push((
            app.client(Some(&token)).await,
            app.client(Some(&token)).await,
        ));
    }
    // Every user likes from two devices at once, all users concurrently.
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(mut phone, mut laptop)| {
            tokio::spawn(async move {
                let on_phone = phone.send_op("feed.like", json!({ "post": id })).await;
                let on_laptop = laptop.send_op("feed.like", json!({ "post": id })).await;
                let mut changed = 0;
                let ok = phone.reply_to(Some(on_phone)).await.expect("like");
                changed += usize::from(ok["changed"] == true);
                let ok = laptop.reply_to(Some(on_laptop)).await.expect("like");
                changed += usize::from(ok["changed"] == true);
                (changed, phone)
            })
        })
        .collect();
    let mut clients = Vec::new();
    for task in tasks {
        let (changed, ws) = task.await.expect("liker");
        assert_eq!(changed, 1, "exactly one of a user's two likes counts");
        clients.push(ws);
    }
    // The author heard of every like, once each.
    let mut liked_by = HashSet::new();
    for _ in 0..LIKERS {
        let push = a.next_event("feed.liked").await.expect("feed.liked");
        assert_eq!(push["post"], id);
        liked_by.insert(push["by"].as_i64().expect("by"));
    }
    assert_eq!(liked_by, likers.iter().copied().collect());
    a.assert_silent("feed.liked").await;

    // Everyone comments at once.
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| {
            tokio::spawn(async move {
                ws.request(
                    "feed.comment",
                    json!({ "post": id, "text": format!("c{i}") }),
                )
                .await
                .expect("comment");
                ws
            })
        })
        .collect();
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.expect("commenter"));
    }
    let (status, body) = app
        .get(&format!("/api/v1/posts/{id}"), Some(&author_token))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["likes"], LIKERS);
    assert_eq!(body["comments"], LIKERS);
    for _ in 0..LIKERS {
        let push = a
            .next_event("feed.commented")
            .await
            .expect("feed.commented");
        assert_eq!(push["post"], id);
        assert!(push["text"].as_str().is_some_and(|t| t.starts_with('c')));
    }

    // Half take their like back, concurrently; unliking twice changes nothing.
    let tasks: Vec<_> = clients
        .into_iter()
        .take(LIKERS / 2)
        .map(|mut ws| {
            tokio::spawn(async move {
                ws.request("feed.unlike", json!({ "post": id }))
                    .await
                    .expect("unlike");
                let again = ws
                    .request("feed.unlike", json!({ "post": id }))
                    .await
                    .expect("unlike again");
                assert_eq!(again["changed"], false);
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("unliker");
    }
    let (_, body) = app
        .get(&format!("/api/v1/posts/{id}"), Some(&author_token))
        .await;
    assert_eq!(body["likes"], LIKERS / 2);
    let (status, page) = app
        .get(
            &format!("/api/v1/posts/{id}/comments?limit=100"),
            Some(&author_token),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["comments"].as_array().map(Vec::len), Some(LIKERS));
    // Liking one's own post counts but pushes nothing.
    let ok = a
        .request("feed.like", json!({ "post": id }))
        .await
        .expect("own like");
    assert_eq!(ok["likes"], LIKERS / 2 + 1);
    a.assert_silent("feed.liked").await;
    let _ = author;
}

async fn tagged_animal_updates_reach_animal_followers(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (merchant, merchant_token) = member(&app, Role::Merchant).await;
    let (rival, rival_token) = member(&app, Role::Merchant).await;
    let (adopter, adopter_token) = member(&app, Role::User).await;
    let (_, user_token) = member(&app, Role::User).await;
    let mut m = app.client(Some(&merchant_token)).await;
    let mut r = app.client(Some(&rival_token)).await;
    let mut u = app.client(Some(&adopter_token)).await;
    let mut plain = app.client(Some(&user_token)).await;
    const ANIMAL: i64 = 42;
    const RIVALS: i64 = 43;
    for (id, owner) in [(ANIMAL, merchant), (RIVALS, rival)] {
        sqlx::query(
            "INSERT INTO animals (id, merchant_id, name, species, description, image_urls, \
             price_cents, slots, created_at, updated_at) \
             VALUES ($1, $2, 'Daisy', 'cow', '', '[]', 100, 1, 0, 0)",
        )
        .bind(id)
        .bind(owner)
        .execute(&app.state.db.pool)
        .await
        .expect("animal");
    }

    // What the claims flow does on a confirmed claim.
    let social = &app.state.hub.social;
    let now = corral_actors::clock::now_ms();
    assert!(
        social
            .follow_animal(adopter, ANIMAL, now)
            .await
            .expect("follow animal")
    );
    assert!(
        !social
            .follow_animal(adopter, ANIMAL, now)
            .await
            .expect("again")
    );

    let untagged = post(&mut m, "general news").await;
    u.assert_silent("feed.post").await;
    let ok = m
        .request(
            "feed.post",
            json!({ "text": "Daisy had a bath", "media": ["https://cdn.example/daisy.jpg"], "animal": ANIMAL }),
        )
        .await
        .expect("tagged post");
    let tagged = ok["post_id"].as_i64().expect("post_id");
    let push = u.next_event("feed.post").await.expect("animal update");
    assert_eq!(push["post"]["post_id"], tagged);
    assert_eq!(push["post"]["animal"], ANIMAL);
    assert_eq!(
        push["post"]["media"],
        json!(["https://cdn.example/daisy.jpg"])
    );
    plain.assert_silent("feed.post").await;
    let page = timeline(&mut u, None, 10).await;
    assert_eq!(post_ids(&page), vec![tagged]);
    assert!(!post_ids(&page).contains(&untagged));

    // Only merchants tag animals, and only their own.
    let err = plain
        .request("feed.post", json!({ "text": "mine", "animal": ANIMAL }))
        .await
        .err();
    assert_eq!(err.map(|e| e.code.as_str()), Some("forbidden"));
    let err = r
        .request("feed.post", json!({ "text": "not mine", "animal": ANIMAL }))
        .await
        .err();
    assert_eq!(err.map(|e| e.code.as_str()), Some("forbidden"));
    let err = r
        .request(
            "feed.post",
            json!({ "text": "nobody's", "animal": 987_654 }),
        )
        .await
        .err();
    assert_eq!(err.map(|e| e.code.as_str()), Some("not_found"));
    r.request("feed.post", json!({ "text": "my own", "animal": RIVALS }))
        .await
        .expect("a merchant tags their own animal");
    u.assert_silent("feed.post").await;
}

async fn bad_posts_and_pages_are_refused(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, token) = member(&app, Role::User).await;
    let mut ws = app.client(Some(&token)).await;
    let code = |r: Result<Value, corral_protocol::ErrorBody>| r.err().map(|e| e.code.as_str());
    let r = ws
        .request(
            "feed.post",
            json!({ "text": "x", "media": ["javascript:alert(1)"] }),
        )
        .await;
    assert_eq!(code(r), Some("bad_request"));
    let r = ws.request("feed.post", json!({ "text": "   " })).await;
    assert_eq!(code(r), Some("bad_request"));
    let r = ws
        .request("feed.post", json!({ "text": "y".repeat(4001) }))
        .await;
    assert_eq!(code(r), Some("too_large"));
    let r = ws.request("feed.timeline", json!({ "limit": 0 })).await;
    assert_eq!(code(r), Some("bad_request"));
    let r = ws.request("feed.like", json!({ "post": "one" })).await;
    assert_eq!(code(r), Some("bad_request"));
    let (status, body) = app
        .post(
            "/api/v1/posts",
            Some(&token),
            json!({ "text": "photo only", "media": ["ftp://x/y"] }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app
        .post(
            "/api/v1/posts",
            Some(&token),
            json!({ "text": "", "media": ["https://cdn.example/p.png"] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = app.get("/api/v1/timeline?limit=101", Some(&token)).await;
    assert_eq!(status, 400);
    let (status, _) = app.get("/api/v1/timeline", None).await;
    assert_eq!(status, 401);
}

/// Two nodes of a cluster: a post made on one reaches its author's followers connected to the
/// other, and a like given there reaches the author back.
#[actix_web::test]
async fn posts_and_likes_cross_nodes() {
    let nodes = TestApp::cluster(2, |_| {}).await;
    let (alice_id, alice_token) = nodes[0].user("alice").await;
    let (bob_id, bob_token) = nodes[0].user("bob").await;
    let (_, carol_token) = nodes[0].user("carol").await;
    let mut alice = nodes[0].client(Some(&alice_token)).await;
    let mut bob = nodes[1].client(Some(&bob_token)).await;
    let mut carol = nodes[1].client(Some(&carol_token)).await;
    bob.request("follow", json!({ "user": alice_id }))
        .await
        .expect("follow");

    let id = post(&mut alice, "hello from node 0").await;
    let push = bob.next_event("feed.post").await.expect("post on node 1");
    assert_eq!(push["post"]["post_id"], id);
    carol.assert_silent("feed.post").await;

    bob.request("feed.like", json!({ "post": id }))
        .await
        .expect("like");
    let liked = alice
        .next_event("feed.liked")
        .await
        .expect("like on node 0");
    assert_eq!(
        (liked["post"].as_i64(), liked["by"].as_i64()),
        (Some(id), Some(bob_id))
    );
    alice.assert_silent("feed.liked").await;
}
