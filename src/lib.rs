//! Corral, the server: configuration, HTTP routes, the WebSocket upgrade, authentication, and
//! the storage adapters that implement the actors' ports. `startup` wires them together.

pub mod admin;
pub mod auth;
pub mod config;
pub mod data_lock;
pub mod fd_limit;
pub mod http;
pub mod memory;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod ws;

pub use startup::Application;
