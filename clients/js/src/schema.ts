//! A tiny runtime decoder DSL: every wire type is declared once as a schema, its TypeScript
//! type is inferred from it, and incoming frames are checked against it. Declaring types and
//! decoders from one source keeps the two from drifting apart; tests check the schemas against
//! frames produced by corral-protocol and by a real node.

/** Why a value does not match its schema. `path` locates the offending field. */
export class SchemaError extends Error {
  constructor(
    readonly path: string,
    readonly expected: string,
  ) {
    super(`${path || "frame"}: expected ${expected}`);
    this.name = "SchemaError";
  }
}

/** How strictly to decode: `strict` also rejects fields the schema does not know. */
export interface DecodeMode {
  strict: boolean;
}

/** A decoder for values of type `T`. */
export interface Schema<T> {
  readonly describe: string;
  parse(value: unknown, path: string, mode: DecodeMode): T;
}

/** The type a schema decodes to. */
export type Infer<S> = S extends Schema<infer T> ? T : never;

function leaf<T>(describe: string, ok: (v: unknown) => v is T): Schema<T> {
  return {
    describe,
    parse(value, path) {
      if (!ok(value)) throw new SchemaError(path, describe);
      return value;
    },
  };
}

/** A JSON integer that fits a double exactly (Corral ids and epoch-ms times). */
export const int: Schema<number> = leaf("integer", (v): v is number => Number.isSafeInteger(v));
/** A non-negative integer (`u64`/`usize` fields such as `seq`). */
export const uint: Schema<number> = leaf(
  "unsigned integer",
  (v): v is number => Number.isSafeInteger(v) && (v as number) >= 0,
);
/** A JSON string. */
export const str: Schema<string> = leaf("string", (v): v is string => typeof v === "string");
/** A JSON boolean. */
export const bool: Schema<boolean> = leaf("boolean", (v): v is boolean => typeof v === "boolean");

/** One of a fixed set of strings. */
export function oneOf<const V extends readonly string[]>(values: V): Schema<V[number]> {
  const set = new Set<string>(values);
  return leaf(`one of ${values.join("|")}`, (v): v is V[number] => typeof v === "string" && set.has(v));
}

/** A value or `null`; an absent field also decodes to `null` (serde's `Option`). */
export function nullable<T>(inner: Schema<T>): Schema<T | null> {
  return {
    describe: `${inner.describe} or null`,
    parse(value, path, mode) {
      return value === null || value === undefined ? null : inner.parse(value, path, mode);
    },
  };
}

/** A field that may be absent (serde `#[serde(default)]` parameters). */
export function optional<T>(inner: Schema<T>): Schema<T | undefined> {
  return {
    describe: `${inner.describe} (optional)`,
    parse(value, path, mode) {
      return value === undefined ? undefined : inner.parse(value, path, mode);
    },
  };
}

/** A JSON array of `inner`. */
export function array<T>(inner: Schema<T>): Schema<T[]> {
  return {
    describe: `array of ${inner.describe}`,
    parse(value, path, mode) {
      if (!Array.isArray(value)) throw new SchemaError(path, this.describe);
      return value.map((item, i) => inner.parse(item, `${path}[${i}]`, mode));
    },
  };
}

type Shape = Record<string, Schema<unknown>>;
type Optionals<S extends Shape> = {
  [K in keyof S]: undefined extends Infer<S[K]> ? K : never;
}[keyof S];
/** The object type of a shape: fields whose schema admits `undefined` become optional. */
export type ObjectOf<S extends Shape> = { [K in Exclude<keyof S, Optionals<S>>]: Infer<S[K]> } & {
  [K in Optionals<S>]?: Infer<S[K]>;
} extends infer O
  ? { [K in keyof O]: O[K] }
  : never;

/** A JSON object with the given fields. In strict mode unknown fields are errors. */
export interface ObjectSchema<S extends Shape> extends Schema<ObjectOf<S>> {
  readonly shape: S;
}

/** A JSON object with the fields of `shape`; `ignore` names envelope fields to skip (`ev`, `id`, `op`). */
export function object<S extends Shape>(shape: S, ignore: readonly string[] = []): ObjectSchema<S> {
  const known = new Set([...Object.keys(shape), ...ignore]);
  return {
    shape,
    describe: "object",
    parse(value, path, mode) {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw new SchemaError(path, "object");
      }
      const input = value as Record<string, unknown>;
      if (mode.strict) {
        for (const key of Object.keys(input)) {
          if (!known.has(key)) throw new SchemaError(path ? `${path}.${key}` : key, "no such field");
        }
      }
      const out: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(shape)) {
        const parsed = field.parse(input[key], path ? `${path}.${key}` : key, mode);
        if (parsed !== undefined) out[key] = parsed;
      }
      return out as ObjectOf<S>;
    },
  };
}

/** Lenient decoding: unknown fields are ignored (a newer server may add some). */
export const LENIENT: DecodeMode = { strict: false };
/** Strict decoding: unknown fields are errors (tests use it to catch drift). */
export const STRICT: DecodeMode = { strict: true };
