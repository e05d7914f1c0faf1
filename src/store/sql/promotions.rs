//! Promotions storage: merchants, animals, activities (with their items) and the audit log of
//! merchant and admin actions. Every write that is a merchant or admin action commits its
//! audit row in the same transaction, so an action is never recorded without happening nor
//! happens without being recorded.

mod activities;
mod animals;
mod audit;
mod merchants;

pub use activities::{ActivityInput, ActivityRepo};
pub(crate) use activities::{item_of, record_of};
pub use animals::{AnimalInput, AnimalRecord, AnimalRepo};
pub use audit::{Audit, AuditEntry, AuditRepo};
pub(crate) use merchants::{MERCHANT_COLUMNS, merchant_of};
pub use merchants::{MerchantRecord, MerchantRepo};
