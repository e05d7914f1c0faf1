//! Idempotency keys for `room.send`, `dm.send` and `claim`: generated once per logical send and
//! reused by every retry, so the server stores one message or one hold whatever happens to
//! the replies.

let counter = 0;
const session = randomHex(8);

function randomHex(bytes: number): string {
  const buf = new Uint8Array(bytes);
  const c = globalThis.crypto;
  if (c && typeof c.getRandomValues === "function") {
    c.getRandomValues(buf);
  } else {
    for (let i = 0; i < bytes; i++) buf[i] = Math.floor(Math.random() * 256);
  }
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A new key: a random per-process prefix, a counter and fresh randomness (at most 40 bytes,
 * well under the protocol's 128). Unique per logical send across devices and reloads.
 */
export function newKey(): string {
  counter += 1;
  return `${session}-${counter.toString(36)}-${randomHex(6)}`;
}
