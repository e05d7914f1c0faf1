// The signed-in session both apps share: the token kept in localStorage, the REST helper and
// the realtime client from @corral/client, and a cache of usernames by id.
import { CorralApi, CorralClient, CorralError } from "@corral/client";

const TOKEN_KEY = "corral.token";
const USER_KEY = "corral.user";

export interface Account {
  user_id: number;
  username: string;
  role: "user" | "merchant" | "admin";
}

/** The saved account, if someone is signed in on this browser. */
export function savedAccount(): Account | null {
  const raw = localStorage.getItem(USER_KEY);
  if (!raw || !localStorage.getItem(TOKEN_KEY)) return null;
  try {
    return JSON.parse(raw) as Account;
  } catch {
    return null;
  }
}

export function token(): string {
  return localStorage.getItem(TOKEN_KEY) ?? "";
}

export function saveSession(tokenValue: string, account: Account): void {
  localStorage.setItem(TOKEN_KEY, tokenValue);
  localStorage.setItem(USER_KEY, JSON.stringify(account));
}

export function clearSession(): void {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(USER_KEY);
}

/** The node's REST API on this origin, authenticated with the saved token. */
export const api = new CorralApi({
  baseUrl: location.origin,
  token,
  // Bound to the window: a bare reference to `fetch` throws "Illegal invocation" when called
  // as another object's method.
  fetch: (input, init) => fetch(input, init),
});

/** The node's WebSocket on this origin. */
export function socketUrl(): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

/** A realtime client for the saved token (connect it yourself). */
export function newClient(): CorralClient {
  return new CorralClient({ url: socketUrl(), token });
}

/** A user-facing sentence for any failure. */
export function explain(err: unknown): string {
  if (err instanceof CorralError) {
    switch (err.code) {
      case "unauthenticated":
        return `Please sign in again (${err.message}).`;
      case "rate_limited":
        return "Too many attempts: wait a moment and try again.";
      case "unavailable":
        return "The server is busy or restarting: try again in a moment.";
      default:
        return err.message;
    }
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

const names = new Map<number, Promise<string>>();

/** The username of `id` (fetched once, then cached). */
export function username(id: number): Promise<string> {
  let found = names.get(id);
  if (!found) {
    found = api
      .get<{ username: string }>(`/api/v1/users/${id}`)
      .then((u) => u.username)
      .catch(() => `user #${id}`);
    names.set(id, found);
  }
  return found;
}

/** A `<span>` showing `@name` of `id` once known (set as text). */
export function nameTag(id: number): HTMLSpanElement {
  const el = document.createElement("span");
  el.className = "name";
  el.textContent = `user #${id}`;
  void username(id).then((name) => {
    el.textContent = name;
  });
  return el;
}
