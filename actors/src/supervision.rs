//! The one supervision helper: a handler or timer body that panics is caught, logged, and
//! stops its actor, so the actor's `actix::Supervisor` restarts it (`restarting()` drops the
//! state that may be broken, `started()` reloads it) instead of the panic taking down the
//! arbiter's task. Rooms and activities run every handler through [`guarded`].

use std::panic::{AssertUnwindSafe, catch_unwind};

use actix::{Actor, ActorContext, Context};

/// An actor whose handlers run [`guarded`].
pub(crate) trait Guarded: Actor<Context = Context<Self>> {
    /// What the actor is (`"room"`, `"activity"`) and its id, for the log line of a panic.
    fn identity(&self) -> (&'static str, i64);
}

/// Runs `body`; a panic is logged and stops the actor (its supervisor then restarts it), and
/// `None` is returned in place of the body's result.
pub(crate) fn guarded<A: Guarded, R>(
    act: &mut A,
    ctx: &mut Context<A>,
    body: impl FnOnce(&mut A, &mut Context<A>) -> R,
) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(|| body(act, ctx))) {
        Ok(r) => Some(r),
        Err(_) => {
            let (kind, id) = act.identity();
            tracing::error!(kind, id, "{kind} actor panicked; restarting it");
            ctx.stop();
            None
        }
    }
}
