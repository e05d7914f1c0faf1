//! `@corral/client`: the TypeScript client of Corral (protocol v1 over WebSocket, and the HTTP API).

export { CorralClient, type ClientOptions, type ConnectionState, type StateDetail, type TokenSource } from "./client.js";
export { Room, type RoomHandlers } from "./room.js";
export { ActivityWatch, type ActivityHandlers, type Unmet } from "./activity.js";
export { countdown, type Countdown, type CountdownHandlers } from "./countdown.js";
export { ServerClock, type ClockView, type SyncSample, type TimeSources } from "./clock.js";
export { CorralError, type ClientErrorCode } from "./errors.js";
export { CorralApi, type ApiOptions, type LoginOk, type RegisterOk } from "./http.js";
export { atLeastHint, backoffDelay, classifyClose, closeReasonHint, type BackoffOptions, type CloseVerdict } from "./backoff.js";
export { newKey } from "./ids.js";
export type { WebSocketCtor, WebSocketLike } from "./socket.js";
export * from "./wire.js";
