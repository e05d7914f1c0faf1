//! Running a real `corral` node for the SDK's tests and benchmark: the binary built by cargo, on
//! a free loopback port with a temporary data dir (embedded SQLite), stopped with SIGTERM or
//! SIGKILL and started again on the same port and data. Plus the HTTP set-up every test needs
//! (users, rooms, a merchant, an animal, a promotion) and a TCP proxy that can lose a reply.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CorralApi } from "../http.js";

const REPO = fileURLToPath(new URL("../../../../", import.meta.url));

/** The `corral` binary: `$CORRAL_BIN`, else `target/<profile>/corral` of this repository. */
export function corralBinary(profile: "debug" | "release" = "debug"): string {
  const bin = process.env.CORRAL_BIN ?? join(REPO, "target", profile, "corral");
  if (!existsSync(bin)) {
    throw new Error(`no corral binary at ${bin}: run \`cargo build${profile === "release" ? " --release" : ""}\` first (or set CORRAL_BIN)`);
  }
  return bin;
}

/** A free loopback port (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every 10 ms until it holds; throws after `ms`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** A `corral serve` child process. */
export class CorralNode {
  #proc: ChildProcess | null = null;
  #exited: Promise<number | null> = Promise.resolve(null);

  private constructor(
    readonly bin: string,
    readonly port: number,
    readonly dataDir: string,
    readonly env: Record<string, string>,
  ) {}

  /** Starts a node on a free port with a fresh data dir; `env` adds `CORRAL_...` settings. */
  static async start(options: { profile?: "debug" | "release"; env?: Record<string, string> } = {}): Promise<CorralNode> {
    const node = new CorralNode(
      corralBinary(options.profile),
      await freePort(),
      mkdtempSync(join(tmpdir(), "corral-sdk-")),
      {
        CORRAL_LOG__FILTER: "warn",
        // A quick drain, and reconnects spread over 1 s instead of 5 s.
        CORRAL_SERVER__DRAIN_MS: "600",
        CORRAL_SERVER__RECONNECT_JITTER_MS: "1000",
        ...options.env,
      },
    );
    await node.restart();
    return node;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  get running(): boolean {
    return this.#proc !== null;
  }

  /** Starts the process (same port, data and settings) and waits for `/healthz`. */
  async restart(): Promise<void> {
    if (this.#proc) throw new Error("already running");
    const proc = spawn(this.bin, ["serve", "--listen", `127.0.0.1:${this.port}`, "--data-dir", this.dataDir], {
      env: { ...process.env, ...this.env },
      stdio: ["ignore", "ignore", "inherit"],
    });
    this.#proc = proc;
    this.#exited = new Promise((resolve) => proc.once("exit", (code) => resolve(code)));
    const end = Date.now() + 30_000;
    for (;;) {
      if (this.#proc !== proc) throw new Error("corral exited while starting");
      try {
        const res = await fetch(`${this.httpUrl}/healthz`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > end) throw new Error(`corral on port ${this.port} did not become healthy`);
      await sleep(50);
    }
  }

  /** Sends `signal` now, without waiting (use `stop` to wait for the exit). */
  signal(signal: "SIGTERM" | "SIGKILL"): void {
    this.#proc?.kill(signal);
  }

  /** Signals the process and waits for it to exit (SIGTERM drains: `server.going_away` first). */
  async stop(signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    const proc = this.#proc;
    if (!proc) return;
    proc.kill(signal);
    const timeout = sleep(20_000).then(() => "timeout" as const);
    const result = await Promise.race([this.#exited, timeout]);
    if (result === "timeout") {
      proc.kill("SIGKILL");
      await this.#exited;
    }
    this.#proc = null;
  }

  /** Stops the node (SIGKILL) and removes its data. */
  async dispose(): Promise<void> {
    await this.stop("SIGKILL");
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** A user with a token. */
export interface Account {
  userId: number;
  username: string;
  token: string;
}

let accounts = 0;

/** Registers and logs in a fresh user. */
export async function newUser(node: CorralNode, prefix = "sdk"): Promise<Account> {
  const api = new CorralApi({ baseUrl: node.httpUrl });
  const username = `${prefix}${process.pid % 10_000}_${++accounts}`;
  const password = "sdk-test-password";
  await api.register(username, password);
  const login = await api.login(username, password);
  return { userId: login.user_id, username, token: login.token };
}

/** An HTTP client authenticated as `account`. */
export function apiAs(node: CorralNode, account: { token: string }): CorralApi {
  return new CorralApi({ baseUrl: node.httpUrl, token: () => account.token });
}

/** Creates a public room owned by `owner`. */
export async function newRoom(node: CorralNode, owner: Account, name = "barn"): Promise<number> {
  const { room_id } = await apiAs(node, owner).post<{ room_id: number }>("/api/v1/rooms", { name });
  return room_id;
}

/** A merchant with one animal and a promotion starting `startsInMs` from now (server clock). */
export async function newPromotion(
  node: CorralNode,
  options: { startsInMs: number; slots: number; perUserLimit?: number; holdSeconds?: number },
): Promise<{ merchant: Account; activityId: number; itemIds: number[]; startsAt: number }> {
  const user = await newUser(node, "farm");
  const became = await apiAs(node, user).post<{ token: string | null }>("/api/v1/merchants", { name: `Farm ${user.username}` });
  if (!became.token) throw new Error("merchant not approved at once (merchants.auto_approve)");
  const merchant = { ...user, token: became.token };
  const api = apiAs(node, merchant);
  const { animal_id } = await api.post<{ animal_id: number }>("/api/v1/animals", {
    name: "Daisy",
    species: "cow",
    price_cents: 5_000,
    slots: options.slots,
  });
  // The node runs on this machine: its clock is ours.
  const startsAt = Date.now() + options.startsInMs;
  const { activity_id } = await api.post<{ activity_id: number }>("/api/v1/activities", {
    title: "Spring calves",
    starts_at: startsAt,
    ends_at: startsAt + 3_600_000,
    items: [{ animal_id, slots: options.slots }],
    per_user_limit: options.perUserLimit ?? 1,
    hold_seconds: options.holdSeconds ?? 600,
  });
  const activity = await api.get<{ items: { item_id: number }[] }>(`/api/v1/activities/${activity_id}`);
  return { merchant, activityId: activity_id, itemIds: activity.items.map((i) => i.item_id), startsAt };
}

/**
 * A loopback TCP proxy in front of a node. `loseReplyContaining(text)` arms it to cut the
 * connection (both ways) instead of forwarding the next server bytes that contain `text`:
 * the server acted, its reply is lost, exactly the case idempotency keys exist for.
 * `setDown(true)` is a network outage for the clients behind it.
 */
export class LossyProxy {
  readonly #server: net.Server;
  readonly #pairs = new Set<[net.Socket, net.Socket]>();
  #lose: string | null = null;
  #onLoss: (() => void) | null = null;
  #down = false;
  lost = 0;

  private constructor(
    server: net.Server,
    readonly port: number,
  ) {
    this.#server = server;
  }

  static async start(targetPort: () => number): Promise<LossyProxy> {
    let proxy: LossyProxy | null = null;
    const server = net.createServer((client) => {
      if (proxy!.#down) {
        client.destroy();
        return;
      }
      const upstream = net.connect(targetPort(), "127.0.0.1");
      const pair: [net.Socket, net.Socket] = [client, upstream];
      proxy!.#pairs.add(pair);
      const cut = () => {
        client.destroy();
        upstream.destroy();
        proxy!.#pairs.delete(pair);
      };
      client.on("data", (d) => upstream.write(d));
      upstream.on("data", (d) => {
        const p = proxy!;
        if (p.#lose !== null && d.includes(p.#lose)) {
          p.#lose = null;
          p.lost += 1;
          cut();
          p.#onLoss?.();
          return;
        }
        client.write(d);
      });
      client.on("close", cut);
      upstream.on("close", cut);
      client.on("error", cut);
      upstream.on("error", cut);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = new LossyProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** Cuts the connection instead of forwarding the next server bytes containing `text`, then calls `then`. */
  loseReplyContaining(text: string, then?: () => void): void {
    this.#lose = text;
    this.#onLoss = then ?? null;
  }

  /** A network outage: cuts every connection and refuses new ones until `setDown(false)`. */
  setDown(down: boolean): void {
    this.#down = down;
    if (!down) return;
    for (const [a, b] of this.#pairs) {
      a.destroy();
      b.destroy();
    }
    this.#pairs.clear();
  }

  async close(): Promise<void> {
    for (const [a, b] of this.#pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
