//! Parsing server text frames into replies and typed pushes.

import { CorralError } from "./errors.js";
import { SchemaError, type DecodeMode } from "./schema.js";
import { errorBodySchema, PUSHES, type AnyPush, type ErrorBody, type PushName } from "./wire.js";

/** A reply to request `re` (`null` when the request had no readable id). */
export interface ReplyFrame {
  kind: "reply";
  re: number | null;
  ok?: unknown;
  error?: ErrorBody;
}

/** A push (an `ev` frame). */
export interface PushFrame {
  kind: "push";
  push: AnyPush;
}

/** A push whose `ev` this SDK does not know (a newer server): passed on undecoded. */
export interface UnknownPushFrame {
  kind: "unknown_push";
  ev: string;
  raw: Record<string, unknown>;
}

export type ServerFrame = ReplyFrame | PushFrame | UnknownPushFrame;

function isPushName(ev: string): ev is PushName {
  return Object.hasOwn(PUSHES, ev);
}

/** Parses one server text frame; throws `CorralError("protocol")` when it does not fit v1. */
export function parseServerFrame(text: string, mode: DecodeMode): ServerFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new CorralError("protocol", "server frame is not JSON", undefined, { cause });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CorralError("protocol", "server frame is not an object");
  }
  const obj = value as Record<string, unknown>;
  try {
    if (typeof obj.ev === "string") {
      if (!isPushName(obj.ev)) {
        if (mode.strict) throw new SchemaError("ev", `a known push (got ${obj.ev})`);
        return { kind: "unknown_push", ev: obj.ev, raw: obj };
      }
      const ev = obj.ev;
      const fields = PUSHES[ev].parse(obj, "", mode) as object;
      return { kind: "push", push: { ...fields, ev } as AnyPush };
    }
    const re = obj.re;
    if (re !== null && !Number.isSafeInteger(re)) throw new SchemaError("re", "integer or null");
    if (mode.strict) {
      for (const key of Object.keys(obj)) {
        if (key !== "re" && key !== "ok" && key !== "error") throw new SchemaError(key, "no such field");
      }
    }
    if (obj.error !== undefined) {
      return { kind: "reply", re: re as number | null, error: errorBodySchema.parse(obj.error, "error", mode) };
    }
    if (obj.ok === undefined) throw new SchemaError("", "`ok`, `error` or `ev`");
    return { kind: "reply", re: re as number | null, ok: obj.ok };
  } catch (err) {
    if (err instanceof SchemaError) {
      throw new CorralError("protocol", `bad server frame: ${err.message}`, undefined, { cause: err });
    }
    throw err;
  }
}
