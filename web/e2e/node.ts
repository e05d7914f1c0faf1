// Test fixtures for the browser tests: a real `corral` node on a free loopback port with its
// own temporary data directory (SQLite, no Redis), and Debian's Chromium driven by
// playwright-core (never a downloaded browser).
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type Browser, type Page, chromium } from "playwright-core";

/** The repository root: the nearest folder above this file holding Cargo.toml (this file runs
 * bundled from a build folder, so no fixed relative path). */
function findRepo(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "Cargo.toml"))) return dir;
    if (dirname(dir) === dir) throw new Error("no Cargo.toml above " + from);
  }
}

const repo = findRepo(import.meta.dirname);

/** The binary under test: $CORRAL_BIN, else the debug build of this checkout. */
export const corralBin = process.env.CORRAL_BIN ?? join(repo, "target/debug/corral");

/** Chromium: $CHROMIUM, else Debian's package. */
export const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** Where the browser tests write their screenshots: a temporary directory, or with
 * `CORRAL_SCREENSHOTS=docs` the ones README.md shows (`docs/screenshots`). */
export const screenshotDir = process.env.CORRAL_SCREENSHOTS === "docs" ? join(repo, "docs/screenshots") : join(tmpdir(), "corral-screenshots");

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? ok(addr.port) : fail(new Error("no port"))));
    });
  });
}

export interface Node {
  base: string;
  stop(): Promise<void>;
}

export interface NodeOptions {
  /** Extra `CORRAL_<SECTION>__<KEY>` settings. */
  env?: Record<string, string>;
  /** Accounts `<prefix>0..` of `role` created with `corral admin seed-users` before the start. */
  seed?: { prefix: string; role: "user" | "merchant" | "admin"; password: string };
}

/** Starts a node and waits until `/readyz` answers. */
export async function startNode(options: NodeOptions = {}): Promise<Node> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "corral-e2e-"));
  if (options.seed) {
    const { prefix, role, password } = options.seed;
    const args = ["admin", "seed-users", "--data-dir", dataDir, "--count", "1", "--prefix", prefix, "--role", role, "--password", password, "--out", join(dataDir, "seeded.json")];
    const seeded = spawnSync(corralBin, args, { stdio: "inherit", env: { ...process.env, CORRAL_LOG__FILTER: "warn" } });
    if (seeded.status !== 0) throw new Error(`corral admin seed-users exited with ${seeded.status}`);
  }
  const child: ChildProcess = spawn(corralBin, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir], {
    env: { ...process.env, CORRAL_LOG__FILTER: "warn", ...options.env },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const base = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`corral exited with ${child.exitCode} before it was ready`);
    try {
      const res = await fetch(`${base}/readyz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error("corral was not ready within 30 s");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    async stop() {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(killer);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Launches headless Chromium (no sandbox: CI runs as root). */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox"] });
}

export const DESKTOP = { width: 1280, height: 860 };
export const PHONE = { width: 390, height: 844 };

/** A fresh browser context (its own storage, so its own account) of the given size. */
export async function newPage(browser: Browser, viewport = DESKTOP): Promise<Page> {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1, isMobile: viewport === PHONE, hasTouch: viewport === PHONE });
  const page = await context.newPage();
  // Script errors and console errors go to the test's output, to explain a failure.
  page.on("pageerror", (err) => console.error(`[page error] ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") console.error(`[console] ${msg.text()}`);
  });
  page.on("dialog", (d) => {
    throw new Error(`unexpected ${d.type()} dialog: ${d.message()}`);
  });
  return page;
}

let counter = 0;

/** A unique valid username. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}${Date.now().toString(36)}${counter}`.slice(0, 32);
}

export const PASSWORD = "correct-horse-battery";

/** Opens `path` and creates an account (or logs in) through the sign-in form. */
export async function register(page: Page, base: string, path: string, username: string, button: "#register" | "#login" = "#register"): Promise<void> {
  await page.goto(base + path);
  await page.fill("input[name=username]", username);
  await page.fill("input[name=password]", PASSWORD);
  await page.click(button);
}

/** Opens a tab of the shell. */
export async function openTab(page: Page, id: string): Promise<void> {
  await page.click(`nav.tabs button[data-tab=${id}]`);
}
