//! A fault hook (the `fault-injection` feature; release builds never carry it): the next
//! hold batch with a hold of a given activity is answered as failed and commits afterwards,
//! as a write cut mid-commit, or timed out behind a hung database, can. The fault suite uses
//! it to reproduce a hold that commits after its node gave up on it, on demand.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use corral_protocol::ops::ActivityId;

/// Activities whose next hold batch commits late, and how late.
static LATE: Mutex<Vec<(ActivityId, Duration)>> = Mutex::new(Vec::new());

/// The next hold batch holding a hold of `activity` (on whichever node of this process
/// writes it) is answered failed, then commits `after` later.
pub fn commit_late_once(activity: ActivityId, after: Duration) {
    late().push((activity, after));
}

/// How long a batch of holds of `activities` waits to commit after it was answered failed,
/// if a hook asks for it (the hook is then spent).
pub(super) fn take(mut activities: impl Iterator<Item = ActivityId>) -> Option<Duration> {
    let mut late = late();
    let at = late
        .iter()
        .position(|(activity, _)| activities.any(|a| a == *activity))?;
    Some(late.swap_remove(at).1)
}

/// The hooks (a test that panicked holding them leaves them usable).
fn late() -> MutexGuard<'static, Vec<(ActivityId, Duration)>> {
    LATE.lock().unwrap_or_else(PoisonError::into_inner)
}
