//! Integration tests: each starts a real Corral node on 127.0.0.1:0 with its own data
//! directory (and, for PostgreSQL, its own database) and talks to it over real HTTP and
//! WebSocket connections, like a client would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod admin_cli;
mod binary;
mod chat;
mod claims;
mod edge;
mod faults;
mod feeds;
mod http_auth;
mod listings;
mod loadtest;
mod observability;
mod openapi;
mod promotions;
mod redis_faults;
mod retry_hints;
mod rules;
mod start_up;
mod store;
mod tls;
mod web_app;
mod ws_protocol;
