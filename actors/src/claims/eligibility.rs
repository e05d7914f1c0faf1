//! Eligibility on the claim desk: each activity's desk keeps, per user who subscribed or
//! claimed on this node, the facts read for its rules and what they decided ([`Decided`]), so
//! a crowd at the start instant is judged from memory and costs no SQL per claim.
//!
//! Facts are read once per user and activity (the first `activity.subscribe`, or the first
//! claim of someone who never subscribed here), then re-read only when they change: the code
//! that changes them (a follow, a post, an invitee registering, a payment) calls
//! [`Claims::facts_changed`](super::Claims::facts_changed), which re-reads the user's facts
//! for every activity that has them here and pushes `activity.eligibility` when the answer
//! changed.

use std::sync::Arc;

use corral_protocol::UserId;
use corral_protocol::rules::Unmet;
use dashmap::DashMap;
use tokio::sync::OnceCell;

use crate::metric_catalogue as metric;
use crate::ports::activities::ActivityRecord;
use crate::ports::rules::{AudienceNote, FactsQuery, RulesError, RulesStore, UserFacts};
use crate::rules;

/// Why a user's facts are being read (the metric's label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The user subscribed to the activity.
    Subscribe,
    /// The user claimed without subscribing first on this node.
    Claim,
    /// Something the rules look at changed.
    Refresh,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Subscribe => "subscribe",
            Reason::Claim => "claim",
            Reason::Refresh => "refresh",
        }
    }
}

/// One user's facts and the rules they do not meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// As read.
    pub facts: UserFacts,
    /// The rules unmet (empty: eligible).
    pub unmet: Vec<Unmet>,
}

/// The decisions of one activity's users on this node.
#[derive(Default)]
pub struct Eligibility {
    users: DashMap<UserId, Arc<OnceCell<Arc<Decided>>>>,
}

/// What a read of facts is for.
pub(crate) fn query(spec: &ActivityRecord, user: UserId) -> FactsQuery {
    FactsQuery {
        user,
        activity: spec.id,
        merchant: spec.merchant_id,
        posts_since: spec.rules.posts_since(),
    }
}

/// Reads `user`'s facts for `spec` and decides; a user the store does not know meets nothing
/// that needs an account (every rule is judged on empty facts).
pub(crate) async fn decide(
    store: &dyn RulesStore,
    spec: &ActivityRecord,
    user: UserId,
    reason: Reason,
) -> Result<Decided, RulesError> {
    metrics::counter!(metric::RULE_FACT_LOADS, "reason" => reason.as_str()).increment(1);
    let facts = store.facts(query(spec, user)).await?.unwrap_or_default();
    Ok(Decided {
        unmet: rules::evaluate(&spec.rules, &facts),
        facts,
    })
}

/// Notes a decision for the funnel, in the background (a failure only loses a statistic).
pub(crate) fn note(store: Arc<dyn RulesStore>, note: AudienceNote) {
    tokio::spawn(async move {
        if let Err(err) = store.note(note).await {
            tracing::warn!(%err, "noting a funnel entry failed");
        }
    });
}

impl Eligibility {
    /// The decision for `user`, reading their facts on first use (concurrent first uses read
    /// once). Whether this call read them is the second value.
    pub async fn get_or_decide(
        &self,
        store: &dyn RulesStore,
        spec: &ActivityRecord,
        user: UserId,
        reason: Reason,
    ) -> Result<(Arc<Decided>, bool), RulesError> {
        let cell = self.users.entry(user).or_default().clone();
        let mut read = false;
        let decided = cell
            .get_or_try_init(|| {
                read = true;
                async { decide(store, spec, user, reason).await.map(Arc::new) }
            })
            .await?;
        Ok((decided.clone(), read))
    }

    /// Whether `user` has a decision here, or one on its way.
    pub fn knows(&self, user: UserId) -> bool {
        self.users.contains_key(&user)
    }

    /// Sets `user`'s decision (after a re-read).
    pub fn set(&self, user: UserId, decided: Decided) {
        let cell = Arc::new(OnceCell::new_with(Some(Arc::new(decided))));
        self.users.insert(user, cell);
    }

    /// Forgets `user`, so the next use reads their facts again. `None` when nothing was
    /// known of them; otherwise the decision made for them, or `Some(None)` for a read still
    /// in flight (it keeps its answer for its own caller, which may predate the change).
    pub fn forget(&self, user: UserId) -> Option<Option<Arc<Decided>>> {
        self.users
            .remove(&user)
            .map(|(_, cell)| cell.get().cloned())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use corral_protocol::rules::{ActivityRules, Requirement, RuleKey};

    use super::*;

    /// Facts from a shared cell, counting reads.
    #[derive(Default)]
    struct Facts {
        follows: std::sync::Mutex<bool>,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl RulesStore for Facts {
        async fn facts(&self, _q: FactsQuery) -> Result<Option<UserFacts>, RulesError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            let follows = self.follows.lock().map(|f| *f).unwrap_or(false);
            Ok(Some(UserFacts {
                follows_merchant: follows,
                ..UserFacts::default()
            }))
        }

        async fn note(&self, _note: AudienceNote) -> Result<(), RulesError> {
            Ok(())
        }
    }

    fn spec() -> ActivityRecord {
        ActivityRecord {
            id: 1,
            merchant_id: 2,
            title: "t".into(),
            starts_at: 0,
            ends_at: i64::MAX,
            per_user_limit: 1,
            hold_seconds: 60,
            cancelled: false,
            rules: ActivityRules {
                requires: vec![Requirement::FollowsMerchant],
                ..ActivityRules::default()
            },
            items: vec![],
        }
    }

    #[tokio::test]
    async fn facts_are_read_once_then_replaced_on_change() {
        let store = Facts::default();
        let spec = spec();
        let cache = Eligibility::default();
        let (a, b) = tokio::join!(
            cache.get_or_decide(&store, &spec, 7, Reason::Subscribe),
            cache.get_or_decide(&store, &spec, 7, Reason::Claim),
        );
        let (a, b) = (a.map(|d| d.0.unmet.clone()), b.map(|d| d.0.unmet.clone()));
        let unmet = vec![Unmet::flag(RuleKey::FollowsMerchant)];
        assert_eq!((a.ok(), b.ok()), (Some(unmet.clone()), Some(unmet.clone())));
        assert_eq!(store.reads.load(Ordering::SeqCst), 1);
        assert!(cache.knows(7) && !cache.knows(8));

        if let Ok(mut follows) = store.follows.lock() {
            *follows = true;
        }
        let old = cache.forget(7).flatten();
        assert_eq!(old.map(|d| d.unmet.clone()), Some(unmet));
        assert!(cache.forget(7).is_none(), "nothing left to forget");
        assert!(!cache.knows(7));
        match decide(&store, &spec, 7, Reason::Refresh).await {
            Ok(fresh) => cache.set(7, fresh),
            Err(err) => panic!("{err}"),
        }
        let (now, read) = match cache.get_or_decide(&store, &spec, 7, Reason::Claim).await {
            Ok((d, read)) => (d.unmet.clone(), read),
            Err(err) => panic!("{err}"),
        };
        assert_eq!((now, read), (vec![], false));
        assert_eq!(store.reads.load(Ordering::SeqCst), 2);
    }
}
