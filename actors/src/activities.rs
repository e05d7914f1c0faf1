//! The node's live promotions: finds or starts the Activity actor of an activity, and keeps
//! each activity's subscriber set (outside the actor, so it survives the actor's restarts).
//!
//! Sessions and HTTP handlers talk to activities only through [`Activities`]. It is built
//! after the claim desk and over it: the actors subscribe to the desk's stock streams.

use std::collections::HashSet;
use std::sync::Arc;

use actix::Addr;
use bytestring::ByteString;
use corral_protocol::ops::{ActivityId, ActivityState, ActivitySubscribeOk};
use corral_protocol::{ErrorCode, UserId};
use dashmap::DashMap;

use crate::activity::subscribers::Subscriber;
use crate::activity::{
    ACTIVITY_RESTARTING, Activity, ActivityError, ActivitySnapshot, Broadcast, Reload, Shared,
    Snapshot, Subscribe,
};
use crate::claims::Claims;
use crate::clock::now_ms;
use crate::metric_catalogue as metric;
use crate::ports::activities::{ActivityCatalog, CatalogError};
use crate::registry::{Arbiters, Registry};
use crate::replier::{OnceReply, Replier};

/// The node's activities. Cheap to clone.
#[derive(Clone)]
pub struct Activities {
    shared: Arc<Shared>,
}

impl Activities {
    /// No activity running yet; actors will run on `arbiters`, read from `catalog` and
    /// subscribe to the stock `claims` publishes; each activity's `activity.stock` frames
    /// stay within `stock_frames_per_sec` on this node.
    pub fn new(
        arbiters: Arc<Arbiters>,
        catalog: Arc<dyn ActivityCatalog>,
        claims: Arc<Claims>,
        stock_frames_per_sec: usize,
    ) -> Activities {
        Activities {
            shared: Arc::new(Shared {
                registry: Registry::new(arbiters),
                directory: DashMap::new(),
                catalog,
                claims,
                stock_frames_per_sec: stock_frames_per_sec.max(1),
            }),
        }
    }

    /// Starts the actor of every activity that is not over, so their timers run (node
    /// start). Returns how many.
    pub async fn resume(&self) -> Result<usize, CatalogError> {
        let ids = self.shared.catalog.pending_activities(now_ms()).await?;
        for id in &ids {
            self.ensure(*id);
        }
        tracing::info!(activities = ids.len(), "activity timers armed");
        Ok(ids.len())
    }

    fn ensure(&self, id: ActivityId) -> Addr<Activity> {
        let subscribers = self.shared.directory.entry(id).or_default().clone();
        let shared = self.shared.clone();
        let addr = self
            .shared
            .registry
            .get_or_start(&id, move || Activity::new(id, shared, subscribers));
        metrics::gauge!(metric::ACTIVITY_ACTORS).set(self.shared.registry.len() as f64);
        addr
    }

    /// `activity.subscribe`: answers through `replier` (exactly once) with the activity's
    /// state and the subscriber's eligibility under its rules (decided by the claim desk,
    /// which keeps the facts it read for the subscriber's claims); the session then receives
    /// its pushes until it unsubscribes, disconnects or the activity ends.
    pub fn subscribe(&self, id: ActivityId, sub: Subscriber, replier: Replier) {
        let reply = OnceReply::new(replier, ACTIVITY_RESTARTING);
        let this = self.clone();
        actix::spawn(async move {
            // Facts are read now, before the start, so claims are judged from memory.
            let unmet = match this.shared.claims.eligibility(id, sub.user).await {
                Ok(unmet) => unmet,
                Err(err) => return reply.fail(err),
            };
            if let Some(addr) = this.shared.registry.get(&id) {
                return addr.do_send(Subscribe { sub, reply, unmet });
            }
            let record = match this.shared.catalog.activity(id).await {
                Ok(Some(record)) => record,
                Ok(None) => return reply.error(ErrorCode::NotFound, "no such activity"),
                Err(err) => {
                    tracing::warn!(%err, "activity store");
                    return reply.error(ErrorCode::Unavailable, "storage unavailable; retry");
                }
            };
            let now = now_ms();
            match record.state_at(now) {
                ActivityState::Scheduled | ActivityState::Live => {
                    this.ensure(id).do_send(Subscribe { sub, reply, unmet })
                }
                state => match this.shared.stock_left(id).await {
                    Ok(stock_left) => reply.ok(&ActivitySubscribeOk {
                        activity: id,
                        state,
                        starts_at: record.starts_at,
                        ends_at: record.ends_at,
                        stock_left,
                        server_time: now_ms(),
                        eligible: unmet.is_empty(),
                        unmet,
                    }),
                    Err(_) => reply.error(ErrorCode::Unavailable, "storage unavailable; retry"),
                },
            }
        });
    }

    /// `activity.unsubscribe`: returns whether the connection was subscribed.
    pub fn unsubscribe(&self, id: ActivityId, conn_id: u64) -> bool {
        self.shared
            .directory
            .get(&id)
            .is_some_and(|set| set.remove(conn_id))
    }

    /// The stored activity was created, edited or cancelled: its actor (started if needed)
    /// reloads it and re-arms its timers, or ends it.
    pub fn changed(&self, id: ActivityId) {
        match self.shared.registry.get(&id) {
            Some(addr) => addr.do_send(Reload),
            // A fresh actor loads the activity when it starts.
            None => {
                self.ensure(id);
            }
        }
    }

    /// Queues a pre-encoded frame (an `activity.broadcast`) to every subscriber on this node
    /// of a scheduled or live activity; returns how many sessions took it. (The merchant's
    /// followers and the other nodes are reached by [`crate::broadcasts`].)
    pub async fn broadcast(
        &self,
        id: ActivityId,
        frame: ByteString,
    ) -> Result<usize, ActivityError> {
        self.ensure(id)
            .send(Broadcast(frame))
            .await
            .map_err(|_| ActivityError::Unavailable)?
    }

    /// The activity's current view: from its actor when it runs (stock and sold-out state
    /// included), from the store otherwise. `NotFound` when it does not exist.
    pub async fn snapshot(&self, id: ActivityId) -> Result<ActivitySnapshot, ActivityError> {
        if let Some(addr) = self.shared.registry.get(&id)
            && let Ok(Ok(snapshot)) = addr.send(Snapshot).await
        {
            return Ok(snapshot);
        }
        let record = self
            .shared
            .catalog
            .activity(id)
            .await?
            .ok_or(ActivityError::NotFound)?;
        let stock_left = self.shared.stock_left(id).await?;
        let server_time = now_ms();
        Ok(ActivitySnapshot {
            state: record.state_at(server_time),
            record,
            stock_left,
            server_time,
        })
    }

    /// How many activity actors run on this node.
    pub fn running(&self) -> usize {
        self.shared.registry.len()
    }

    /// The users with a session on this node watching `id`.
    pub fn subscribed_users(&self, id: ActivityId) -> HashSet<UserId> {
        self.shared
            .directory
            .get(&id)
            .map(|set| set.users())
            .unwrap_or_default()
    }

    /// How many sessions on this node watch `id`.
    pub fn subscriber_count(&self, id: ActivityId) -> usize {
        self.shared.directory.get(&id).map_or(0, |set| set.len())
    }

    /// Test-only: hands `stock` to the running actor of `id` as if the claim desk had
    /// published it (it pushes `activity.stock`, and ends the activity when it is sold out
    /// for good).
    #[cfg(feature = "fault-injection")]
    pub fn inject_stock(&self, id: ActivityId, stock: crate::ports::claims::StockLevel) {
        if let Some(addr) = self.shared.registry.get(&id) {
            addr.do_send(crate::activity::claims::StockChanged(stock));
        }
    }

    /// Test-only: makes the running actor of `id` panic; returns whether one was running.
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic(&self, id: ActivityId) -> bool {
        match self.shared.registry.get(&id) {
            Some(addr) => {
                addr.do_send(crate::activity::InjectPanic);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use async_trait::async_trait;
    use corral_protocol::ops::{ActivityId, AnimalId, Comment, Post, PostId};
    use corral_protocol::{EpochMs, UserId};
    use tokio::sync::Semaphore;
    use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

    use std::time::Duration;

    use super::*;
    use crate::activity::subscribers::Subscriber;
    use crate::claims::Claims;
    use crate::clock::now_ms;
    use crate::outbound::{Outbound, OutboundRx};
    use crate::ports::activities::{ActivityCatalog, ActivityItem, ActivityRecord, CatalogError};
    use crate::ports::claims::StockLevel;
    use crate::ports::claims::{
        ClaimLedger, ClaimRecord, HoldOutcome, LedgerError, PaymentOutcome,
    };
    use crate::ports::cluster::SoloBus;
    use crate::ports::{
        CommentAdded, FollowCounts, LikeChange, NewPost, SocialError, SocialStore, UserPage,
    };
    use crate::registry::Arbiters;
    use crate::replier::Replier;
    use crate::users::UserSessions;

    /// One live activity with ten slots, whose reads can be held at a gate: each read says
    /// so on `entered` before it waits there, so a test can act while the actor is
    /// mid-reload.
    struct GatedActivity {
        gate: Semaphore,
        entered: UnboundedSender<()>,
    }

    #[async_trait]
    impl ActivityCatalog for GatedActivity {
        async fn activity(&self, id: i64) -> Result<Option<ActivityRecord>, CatalogError> {
            let _ = self.entered.send(());
            let permit = self.gate.acquire().await.expect("gate open");
            drop(permit);
            Ok(Some(ActivityRecord {
                id,
                merchant_id: 1,
                title: "t".into(),
                starts_at: now_ms() - 1_000,
                ends_at: now_ms() + 600_000,
                per_user_limit: 1,
                hold_seconds: 60,
                cancelled: false,
                rules: Default::default(),
                items: vec![ActivityItem {
                    item_id: 1,
                    animal_id: 1,
                    slots: 10,
                }],
            }))
        }

        async fn pending_activities(&self, _now: i64) -> Result<Vec<i64>, CatalogError> {
            Ok(Vec::new())
        }

        async fn with_outstanding_holds(&self) -> Result<Vec<ActivityId>, CatalogError> {
            Ok(Vec::new())
        }
    }

    /// A ledger whose stock the test sets; it decides no claims.
    struct SetStock {
        left: AtomicI64,
    }

    #[async_trait]
    impl ClaimLedger for SetStock {
        async fn hold(
            &self,
            _: &ActivityRecord,
            _: UserId,
            _: Option<i64>,
            _: &str,
            _: EpochMs,
        ) -> Result<HoldOutcome, LedgerError> {
            unimplemented!()
        }

        async fn cancel(
            &self,
            _: &ActivityRecord,
            _: &ClaimRecord,
            _: EpochMs,
        ) -> Result<Option<ClaimRecord>, LedgerError> {
            unimplemented!()
        }

        async fn confirm(
            &self,
            _: &ActivityRecord,
            _: &ClaimRecord,
            _: EpochMs,
        ) -> Result<PaymentOutcome, LedgerError> {
            unimplemented!()
        }

        async fn expire(
            &self,
            _: &ActivityRecord,
            _: EpochMs,
        ) -> Result<Vec<ClaimRecord>, LedgerError> {
            Ok(Vec::new())
        }

        async fn recover(&self, _: &ActivityRecord) -> Result<Vec<EpochMs>, LedgerError> {
            Ok(Vec::new())
        }

        async fn stock(&self, spec: &ActivityRecord) -> Result<StockLevel, LedgerError> {
            let left = self.left.load(Ordering::SeqCst);
            Ok(StockLevel {
                left,
                held: spec.total_slots() - left,
            })
        }

        async fn claim(&self, _: i64) -> Result<Option<ClaimRecord>, LedgerError> {
            Ok(None)
        }
    }

    /// The activity has no rules: no fact is ever read.
    struct NoFacts;

    #[async_trait]
    impl crate::ports::RulesStore for NoFacts {
        async fn facts(
            &self,
            _query: crate::ports::FactsQuery,
        ) -> Result<Option<crate::ports::UserFacts>, crate::ports::RulesError> {
            Err(crate::ports::RulesError("no facts here".into()))
        }

        async fn note(
            &self,
            _note: crate::ports::AudienceNote,
        ) -> Result<(), crate::ports::RulesError> {
            Ok(())
        }
    }

    /// The claim desk needs a social store only for confirmed claims, which never happen here.
    struct NoSocial;

    #[async_trait]
    impl SocialStore for NoSocial {
        async fn follow(&self, _: UserId, _: UserId, _: EpochMs) -> Result<bool, SocialError> {
            unimplemented!()
        }
        async fn unfollow(&self, _: UserId, _: UserId) -> Result<bool, SocialError> {
            unimplemented!()
        }
        async fn follow_counts(&self, _: UserId) -> Result<FollowCounts, SocialError> {
            unimplemented!()
        }
        async fn followers(
            &self,
            _: UserId,
            _: Option<UserId>,
            _: u32,
        ) -> Result<UserPage, SocialError> {
            unimplemented!()
        }
        async fn following(
            &self,
            _: UserId,
            _: Option<UserId>,
            _: u32,
        ) -> Result<UserPage, SocialError> {
            unimplemented!()
        }
        async fn follow_animal(
            &self,
            _: UserId,
            _: AnimalId,
            _: EpochMs,
        ) -> Result<bool, SocialError> {
            unimplemented!()
        }
        async fn create_post(&self, _: NewPost) -> Result<Post, SocialError> {
            unimplemented!()
        }
        async fn post(&self, _: PostId) -> Result<Post, SocialError> {
            unimplemented!()
        }
        async fn delete_post(&self, _: PostId, _: UserId, _: EpochMs) -> Result<Post, SocialError> {
            unimplemented!()
        }
        async fn timeline(
            &self,
            _: UserId,
            _: Option<PostId>,
            _: u32,
        ) -> Result<Vec<Post>, SocialError> {
            unimplemented!()
        }
        async fn profile(
            &self,
            _: UserId,
            _: Option<PostId>,
            _: u32,
        ) -> Result<Vec<Post>, SocialError> {
            unimplemented!()
        }
        async fn like(&self, _: UserId, _: PostId, _: EpochMs) -> Result<LikeChange, SocialError> {
            unimplemented!()
        }
        async fn unlike(&self, _: UserId, _: PostId) -> Result<LikeChange, SocialError> {
            unimplemented!()
        }
        async fn comment(
            &self,
            _: UserId,
            _: PostId,
            _: &str,
            _: EpochMs,
        ) -> Result<CommentAdded, SocialError> {
            unimplemented!()
        }
        async fn comments(
            &self,
            _: PostId,
            _: Option<i64>,
            _: u32,
        ) -> Result<Vec<Comment>, SocialError> {
            unimplemented!()
        }
        async fn audience_size(&self, _: UserId, _: Option<AnimalId>) -> Result<u64, SocialError> {
            unimplemented!()
        }
        async fn audience_page(
            &self,
            _: UserId,
            _: Option<AnimalId>,
            _: UserId,
            _: u32,
        ) -> Result<Vec<UserId>, SocialError> {
            unimplemented!()
        }
        async fn audience_among(
            &self,
            _: UserId,
            _: Option<AnimalId>,
            _: &[UserId],
        ) -> Result<Vec<UserId>, SocialError> {
            unimplemented!()
        }
    }

    /// The next frame on `rx`, failing after a generous deadline.
    async fn next_frame(rx: &mut OutboundRx, what: &str) -> serde_json::Value {
        let frame = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} within 10 s"))
            .unwrap_or_else(|| panic!("queue closed before {what}"));
        serde_json::from_str(&frame).expect("a JSON frame")
    }

    /// A stock change that reaches the actor while it reloads (an edit, a supervised restart)
    /// still goes out: the reload reads the stream's new level, and the change on the
    /// subscription it replaces must not be taken for "nothing new".
    #[actix::test]
    async fn a_stock_change_during_a_reload_reaches_the_subscribers() {
        let (entered, mut reads): (_, UnboundedReceiver<()>) = unbounded_channel();
        let catalog = Arc::new(GatedActivity {
            gate: Semaphore::new(1),
            entered,
        });
        let ledger = Arc::new(SetStock {
            left: AtomicI64::new(10),
        });
        let claims = Claims::new(
            ledger.clone(),
            catalog.clone(),
            Arc::new(UserSessions::new(Arc::new(SoloBus))),
            Arc::new(NoSocial),
            Arc::new(NoFacts),
            Duration::from_secs(10),
        );
        let activities =
            Activities::new(Arbiters::start(1), catalog.clone(), claims.clone(), 1_000);
        let (out, mut rx) = Outbound::channel(64);
        let sub = Subscriber {
            conn_id: 1,
            user: 7,
            out: out.clone(),
        };
        activities.subscribe(
            42,
            sub,
            Replier::new(
                Some(1),
                "activity.subscribe",
                std::time::Instant::now(),
                out,
            ),
        );
        let reply = next_frame(&mut rx, "the subscribe reply").await;
        assert_eq!(reply["ok"]["stock_left"], 10, "{reply}");

        // The ledger moves to 9 and the actor starts reloading; its read waits at the gate.
        let closed = catalog.gate.acquire().await.expect("gate");
        ledger.left.store(9, Ordering::SeqCst);
        while reads.try_recv().is_ok() {}
        activities.changed(42);
        tokio::time::timeout(Duration::from_secs(10), reads.recv())
            .await
            .expect("the reload reads the catalogue");
        // The claim desk publishes the change mid-reload, then the read completes.
        let mut stock = claims.stock(42).await.expect("stock").expect("activity");
        claims.reread(42);
        tokio::time::timeout(Duration::from_secs(10), stock.wait_for(|s| s.left == 9))
            .await
            .expect("the desk publishes 9 left")
            .expect("desk");
        drop(closed);

        let frame = next_frame(&mut rx, "activity.stock {left: 9}").await;
        assert_eq!(
            (frame["ev"].as_str(), frame["left"].as_i64()),
            (Some("activity.stock"), Some(9)),
            "{frame}"
        );
    }
}
