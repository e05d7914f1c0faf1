//! The Activity actor's claim handlers: the claim desk's coalesced stock changes become
//! `activity.stock` frames to the subscribers (the desk already limits them to one per
//! [`crate::claims::service::STOCK_EVERY_MS`]), and a live activity with nothing left and no
//! hold outstanding ends with `activity.ended {reason: "sold_out"}`.

use actix::prelude::*;
use bytestring::ByteString;
use corral_protocol::ops::{ActivityState, EndReason};
use corral_protocol::{Push, reply};

use super::Activity;
use crate::claims::StockView;
use crate::clock::now_ms;

/// The ledger's stock for this activity changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StockChanged(pub StockView);

impl Handler<StockChanged> for Activity {
    type Result = ();

    fn handle(&mut self, StockChanged(stock): StockChanged, ctx: &mut Self::Context) {
        let id = self.id;
        let Some(live) = self.live_mut() else { return };
        if live.stock_left != stock.left {
            live.stock_left = stock.left;
            self.push_frame(&ByteString::from(reply::push(&Push::ActivityStock {
                activity: id,
                left: stock.left,
            })));
        }
        if stock.left == 0 && stock.held == 0 && self.state(now_ms()) == Some(ActivityState::Live) {
            self.end(ctx, EndReason::SoldOut);
        }
    }
}
