//! Looking at a promotion's claims while a soak runs: the merchant view
//! (`GET /api/v1/activities/{id}/claims`) read every few seconds through the active phase, each
//! read held to the slots and the per-user limit ([`ClaimsLooks`]). The end of a soak shows
//! little (its short holds have mostly expired or been given back); the looks show the
//! invariants held while slots churned.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::api::Api;
use crate::checks::ClaimsLooks;
use crate::provision::Promotion;
use crate::stats::now_us;

/// A running watch; [`ClaimsWatcher::stop`] ends it and returns what it saw.
pub struct ClaimsWatcher {
    looks: Arc<Mutex<ClaimsLooks>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ClaimsWatcher {
    /// Looks at `promotion`'s claims through `api` every `every` from now on (the first look
    /// at once).
    pub fn start(api: Api, promotion: &Promotion, every: Duration) -> ClaimsWatcher {
        let looks = Arc::new(Mutex::new(ClaimsLooks::default()));
        let (stop, mut stopped) = watch::channel(false);
        let token = promotion.merchant_token.clone();
        let activity = promotion.activity.activity_id;
        let limit = promotion.activity.per_user_limit;
        let slots: BTreeMap<i64, u64> = promotion
            .activity
            .items
            .iter()
            .map(|item| (item.item_id, item.slots))
            .collect();
        let origin = now_us();
        let into = looks.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                let view = api.claims(&token, activity).await;
                let at = now_us().saturating_sub(origin) as f64 / 1e6;
                if let Ok(mut looks) = into.lock() {
                    match view {
                        Ok(view) => looks.look(at, &view.claims, &slots, limit),
                        Err(_) => looks.failed_reads += 1,
                    }
                }
            }
        });
        ClaimsWatcher { looks, stop, task }
    }

    /// Ends the watch.
    pub async fn stop(self) -> ClaimsLooks {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.looks.lock().map(|l| l.clone()).unwrap_or_default()
    }
}
