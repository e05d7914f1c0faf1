//! `CorralApi`: the HTTP API (`/api/v1`, see `GET /api/v1/openapi.json`) with the same error
//! shape as the socket: a failed call rejects with `CorralError {code, message, status}`.

import { CorralError } from "./errors.js";
import { LENIENT } from "./schema.js";
import { errorBodySchema, type Role } from "./wire.js";

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ApiOptions {
  /** The node's base URL, e.g. `http://127.0.0.1:8080` (empty for same-origin in a browser). */
  baseUrl?: string;
  /** The bearer token, when logged in (re-read on every call). */
  token?: () => string | null | undefined;
  /** `fetch` to use; default the global one. */
  fetch?: FetchLike;
}

export interface LoginOk {
  token: string;
  user_id: number;
  role: Role;
}

export interface RegisterOk {
  user_id: number;
  /** Present when the server logs a new user in at once. */
  token?: string;
  role?: Role;
}

export class CorralApi {
  readonly #base: string;
  readonly #token: () => string | null | undefined;
  readonly #fetch: FetchLike;

  constructor(options: ApiOptions = {}) {
    this.#base = (options.baseUrl ?? "").replace(/\/+$/, "");
    this.#token = options.token ?? (() => null);
    const f = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
    if (!f) throw new TypeError("no fetch: pass `fetch`");
    this.#fetch = f;
  }

  /** Creates an account, credited to the friend whose invite code is given. */
  register(username: string, password: string, inviteCode?: string): Promise<RegisterOk> {
    const body = inviteCode ? { username, password, invite_code: inviteCode } : { username, password };
    return this.post<RegisterOk>("/api/v1/auth/register", body);
  }

  /** Logs in: the token is for `CorralClient` and for this API's `token` option. */
  login(username: string, password: string): Promise<LoginOk> {
    return this.post<LoginOk>("/api/v1/auth/login", { username, password });
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>("GET", path);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.call<T>("POST", path, body);
  }

  put<T>(path: string, body?: unknown): Promise<T> {
    return this.call<T>("PUT", path, body);
  }

  delete<T>(path: string, body?: unknown): Promise<T> {
    return this.call<T>("DELETE", path, body);
  }

  /** One call: JSON in, JSON out (`undefined` for an empty body); errors as `CorralError`. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    const token = this.#token();
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await this.#fetch(this.#base + path, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (cause) {
      throw new CorralError("network", `${method} ${path}: ${String(cause)}`, undefined, { cause });
    }
    const text = await res.text();
    let json: unknown = undefined;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch (cause) {
        throw new CorralError("protocol", `${method} ${path}: answered ${res.status} with non-JSON`, res.status, { cause });
      }
    }
    if (!res.ok) {
      const body = (json as { error?: unknown } | undefined)?.error;
      try {
        const err = errorBodySchema.parse(body, "error", LENIENT);
        throw new CorralError(err.code, err.message, res.status, { retryAfterMs: err.retry_after_ms ?? retryAfterHeader(res) });
      } catch (e) {
        if (e instanceof CorralError) throw e;
        throw new CorralError(res.status >= 500 ? "unavailable" : "bad_request", `${method} ${path}: HTTP ${res.status}`, res.status);
      }
    }
    return json as T;
  }
}

/** `Retry-After` in whole seconds, as ms (the HTTP date form is not used by Corral). */
function retryAfterHeader(res: Response): number | undefined {
  const secs = Number(res.headers.get("Retry-After") ?? "");
  return Number.isFinite(secs) && secs > 0 ? secs * 1000 : undefined;
}
