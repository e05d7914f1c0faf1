//! Following a client through a node's death: when a cluster run's node goes away (its socket
//! closes or breaks), the client connects to another node of `nodes = [...]`, authenticates
//! again and, in a flash crowd, re-subscribes; the crowd then sends its unanswered claims again
//! with the same keys, so the server's idempotency (not the load generator) decides whether the
//! dead node had taken them, and the history check covers killed nodes.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;

use super::client::{Client, request, subscribe};
use super::ctx::Ctx;
use crate::client::{self, ClientError, Conn};
use crate::scenario::target_addr;

/// How long a connect to a surviving node may take.
const CONNECT: Duration = Duration::from_secs(10);

/// The other nodes of the run, in the order a client of worker `index` tries them (the next
/// one first, so the clients of a dead node spread over the survivors by worker).
pub(super) fn other_nodes(nodes: &[String], index: usize) -> Vec<(String, SocketAddr)> {
    let n = nodes.len();
    (1..n)
        .map(|step| &nodes[(index + step) % n])
        .filter_map(|url| target_addr(url).ok().map(|addr| (url.clone(), addr)))
        .collect()
}

/// Moves `client` to a surviving node: connects, authenticates, and subscribes to `activity`
/// again if given (its reply re-anchors `starts_at`). Returns whether it found one; the close
/// itself is counted under `failovers` (or the last attempt's error when no node answers).
pub(super) async fn fail_over(ctx: &Ctx, client: &mut Client, activity: Option<i64>) -> bool {
    let Some(account) = ctx.accounts.get(client.n) else {
        return false;
    };
    let token = account.token.clone();
    let nodes = &ctx.others;
    let mut last: Option<ClientError> = None;
    for step in 0..nodes.len() {
        // Clients of one worker start at different survivors, to spread the moved load.
        let (url, addr) = &nodes[(client.n + step) % nodes.len()];
        let source = ctx.scenario().source_addr(client.n);
        match client::connect(
            url,
            *addr,
            source,
            Some(corral_protocol::SUBPROTOCOL),
            CONNECT,
        )
        .await
        {
            Ok(ws) => client.conn = Conn::new(ws),
            Err(err) => {
                last = Some(err);
                continue;
            }
        }
        match rejoin(ctx, client, &token, activity).await {
            Ok(()) => {
                ctx.rec.with(|s, bin| s.count("failovers", bin, 1));
                return true;
            }
            Err(err) => last = Some(err),
        }
    }
    if let Some(err) = last {
        ctx.error(&err);
    }
    false
}

async fn rejoin(
    ctx: &Ctx,
    client: &mut Client,
    token: &str,
    activity: Option<i64>,
) -> Result<(), ClientError> {
    request(ctx, client, "auth", &json!({ "token": token })).await?;
    if let Some(activity) = activity {
        subscribe(ctx, client, activity).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_tries_the_next_nodes_in_turn_and_never_its_own() {
        let nodes: Vec<String> = (1..=3).map(|p| format!("ws://127.0.0.1:{p}/ws")).collect();
        let order: Vec<u16> = other_nodes(&nodes, 1)
            .iter()
            .map(|(_, addr)| addr.port())
            .collect();
        assert_eq!(order, [3, 1]);
        assert!(other_nodes(&nodes[..1], 0).is_empty());
    }
}
