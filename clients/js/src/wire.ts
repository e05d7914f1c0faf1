//! Protocol v1 wire types (protocol/README.md, crate `corral-protocol`), declared as schemas so
//! the SDK decodes exactly what it types. `wire.test.ts` checks every schema against the JSON
//! the Rust types serialize to (`wire-fixtures.json`, written and checked by the Rust test
//! `tests/sdk_wire_fixtures.rs`) and against every example in protocol/README.md.

import {
  array,
  bool,
  int,
  nullable,
  object,
  oneOf,
  optional,
  str,
  uint,
  type Infer,
  type Schema,
} from "./schema.js";

/** The WebSocket subprotocol Corral speaks. */
export const SUBPROTOCOL = "corral.v1";

/** Every error code a reply or an HTTP error body can carry (`ErrorCode::ALL`). */
export const ERROR_CODES = [
  "bad_request",
  "unknown_op",
  "unauthenticated",
  "forbidden",
  "not_found",
  "rate_limited",
  "too_large",
  "not_started",
  "ended",
  "sold_out",
  "limit_reached",
  "not_eligible",
  "hold_expired",
  "conflict",
  "unavailable",
  "internal",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Corral's WebSocket close codes (`corral_protocol::limits::close`). */
export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED: 1003,
  POLICY: 1008,
  TOO_LARGE: 1009,
  IDLE: 4000,
  SLOW_CONSUMER: 4008,
  TRY_AGAIN_LATER: 1013,
} as const;

export const ROLES = ["user", "merchant", "admin"] as const;
export const ACTIVITY_STATES = ["scheduled", "live", "ended", "cancelled"] as const;
export const END_REASONS = ["time", "cancelled", "sold_out"] as const;
export const CLAIM_STATUSES = ["held", "confirmed", "expired", "cancelled", "refund_due"] as const;
export const PRESENCE_STATES = ["joined", "left"] as const;
/** The rules of a promotion a user may not meet (`RuleKey::ALL`). */
export const RULE_KEYS = [
  "followers_only",
  "registered_before",
  "new_users_since",
  "follows_merchant",
  "posts",
  "invited",
  "confirmed_claims",
] as const;

export type Role = (typeof ROLES)[number];
export type ActivityState = (typeof ACTIVITY_STATES)[number];
export type EndReason = (typeof END_REASONS)[number];
export type ClaimStatus = (typeof CLAIM_STATUSES)[number];
export type PresenceState = (typeof PRESENCE_STATES)[number];

const errorCode = oneOf(ERROR_CODES);
const role = oneOf(ROLES);
const activityState = oneOf(ACTIVITY_STATES);
const endReason = oneOf(END_REASONS);
const claimStatus = oneOf(CLAIM_STATUSES);
const presenceState = oneOf(PRESENCE_STATES);
const ruleKey = oneOf(RULE_KEYS);
/** A rule the user does not meet; `need` and `have` for a count. */
const unmetSchema = object({ rule: ruleKey, need: optional(int), have: optional(int) });

/** The `error` object of a reply or an HTTP error body. */
/** An error reply's body; `retry_after_ms` is the server's "wait at least this long" (sheds, load refusals). */
export const errorBodySchema = object({ code: errorCode, message: str, retry_after_ms: optional(uint) });
export type ErrorBody = Infer<typeof errorBodySchema>;

/** A stored chat message (`room.message` pushes, `missed[]`, `messages[]`). */
export const chatMessageSchema = object({
  room: int,
  seq: uint,
  from: int,
  text: str,
  ts: int,
  client_msg_id: str,
});
export type ChatMessage = Infer<typeof chatMessageSchema>;

/** A post (timeline entries, `feed.post` pushes). */
export const postSchema = object({
  post_id: int,
  author: int,
  text: str,
  media: array(str),
  animal: nullable(int),
  likes: uint,
  comments: uint,
  created_at: int,
});
export type Post = Infer<typeof postSchema>;

/** An `Option` parameter with `#[serde(default)]`: absent, null or a value. */
function opt<T>(inner: Schema<T>): Schema<T | null | undefined> {
  return optional(nullable(inner));
}

const empty = object({});
const postsPage = object({ posts: array(postSchema), next_before: nullable(int) });
const postRef = object({ post: int });
const userRef = object({ user: int });
const activityRef = object({ activity: int });
const likeOk = object({ likes: uint, changed: bool });
const page = { before: opt(int), limit: uint };

function op<P, O>(params: P, ok: O): { params: P; ok: O } {
  return { params, ok };
}

/** Every op: its parameters (without `id`/`op`) and its `ok` reply. */
export const OPS = {
  auth: op(object({ token: str }), object({ user_id: int, role, server_time: int })),
  "time.sync": op(object({ client_time: int }), object({ client_time: int, server_time: int })),
  "room.join": op(
    object({ room: int, since: opt(uint) }),
    object({
      room: int,
      last_seq: uint,
      epoch: int,
      missed: array(chatMessageSchema),
      truncated: bool,
      caught_up: bool,
      online: array(int),
      online_count: uint,
    }),
  ),
  "room.leave": op(object({ room: int }), empty),
  "room.send": op(object({ room: int, text: str, client_msg_id: str }), object({ seq: uint, ts: int })),
  "room.history": op(
    object({ room: int, before_seq: opt(uint), limit: uint }),
    object({ messages: array(chatMessageSchema) }),
  ),
  "dm.send": op(
    object({ to: int, text: str, client_msg_id: str }),
    object({ room: int, seq: uint, ts: int }),
  ),
  follow: op(userRef, empty),
  unfollow: op(userRef, empty),
  "feed.post": op(
    object({ text: str, media: optional(array(str)), animal: opt(int) }),
    object({ post_id: int, created_at: int }),
  ),
  "feed.timeline": op(object(page), postsPage),
  "feed.profile": op(object({ user: int, ...page }), postsPage),
  "feed.like": op(postRef, likeOk),
  "feed.unlike": op(postRef, likeOk),
  "feed.comment": op(object({ post: int, text: str }), object({ comment_id: int, comments: uint })),
  "feed.delete": op(postRef, empty),
  "activity.subscribe": op(
    activityRef,
    object({
      activity: int,
      state: activityState,
      starts_at: int,
      ends_at: int,
      stock_left: int,
      server_time: int,
      eligible: bool,
      unmet: array(unmetSchema),
    }),
  ),
  "activity.unsubscribe": op(activityRef, empty),
  claim: op(
    object({ activity: int, item: opt(int), key: str }),
    object({ claim_id: int, item: int, status: claimStatus, expires_at: int, coupon_code: opt(str) }),
  ),
  "claim.cancel": op(object({ claim_id: int }), object({ status: claimStatus })),
} as const;

/** An op name. */
export type OpName = keyof typeof OPS;
/** The parameters of op `K`. */
export type ParamsOf<K extends OpName> = Infer<(typeof OPS)[K]["params"]>;
/** The `ok` reply of op `K`. */
export type ReplyOf<K extends OpName> = Infer<(typeof OPS)[K]["ok"]>;

export type AuthOk = ReplyOf<"auth">;
export type RoomJoinOk = ReplyOf<"room.join">;
export type RoomSendOk = ReplyOf<"room.send">;
export type DmSendOk = ReplyOf<"dm.send">;
export type ActivitySubscribeOk = ReplyOf<"activity.subscribe">;
export type ClaimOk = ReplyOf<"claim">;
export type ClaimCancelOk = ReplyOf<"claim.cancel">;
export type PostsPage = ReplyOf<"feed.timeline">;

/** Every server push, by its `ev` name (fields besides `ev`). */
export const PUSHES = {
  "server.going_away": object({ reconnect_after_ms: uint }, ["ev"]),
  "room.message": object(chatMessageSchema.shape, ["ev"]),
  presence: object({ room: int, user: int, state: presenceState }, ["ev"]),
  "activity.countdown": object({ activity: int, seconds_left: int, server_time: int }, ["ev"]),
  "activity.started": object({ activity: int, server_time: int }, ["ev"]),
  "activity.ended": object({ activity: int, reason: endReason, server_time: int }, ["ev"]),
  "activity.broadcast": object({ activity: int, text: str, ts: int }, ["ev"]),
  "claim.updated": object(
    { claim_id: int, activity: int, item: int, status: claimStatus, coupon_code: opt(str) },
    ["ev"],
  ),
  "activity.stock": object({ activity: int, left: int }, ["ev"]),
  "activity.eligibility": object({ activity: int, eligible: bool, unmet: array(unmetSchema) }, ["ev"]),
  "feed.post": object({ post: postSchema }, ["ev"]),
  "feed.liked": object({ post: int, by: int }, ["ev"]),
  "feed.commented": object({ post: int, by: int, text: str }, ["ev"]),
} as const;

/** A push event name. */
export type PushName = keyof typeof PUSHES;
/** The push `E` as delivered to handlers (with its `ev`); a union of names gives a union of pushes. */
export type PushOf<E extends PushName> = E extends PushName ? Infer<(typeof PUSHES)[E]> & { ev: E } : never;
/** Any push. */
export type AnyPush = PushOf<PushName>;
