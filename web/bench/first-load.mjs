// Measures the user app's first load on loopback with Chromium (via CDP): bytes transferred
// (compressed, headers included, as Chromium counts them) and time to interactive, for
//  - a new visitor: navigation to the sign-in form ready for input, and
//  - a signed-in visitor with an empty cache: navigation to the app connected (WebSocket
//    open, `auth` and clock sync done, the first tab rendered: `body[data-ready]`).
// Each run uses a fresh browser context (empty cache). Prints medians and p95 as JSON.
//
//   node bench/first-load.mjs [RUNS]   (a node must serve on $CORRAL_URL, default 127.0.0.1:8080)
import { chromium } from "playwright-core";

const base = process.env.CORRAL_URL ?? "http://127.0.0.1:8080";
const runs = Number(process.argv[2] ?? 20);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });

async function register() {
  const username = `bench${Date.now().toString(36)}`;
  const res = await fetch(`${base}/api/v1/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password: "correct-horse-battery" }),
  });
  if (!res.ok) throw new Error(`register: ${res.status} ${await res.text()}`);
  const body = await res.json();
  return { token: body.token, user: JSON.stringify({ user_id: body.user_id, username, role: body.role }) };
}

async function once(signedIn, account) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  if (signedIn) {
    await context.addInitScript(({ token, user }) => {
      localStorage.setItem("corral.token", token);
      localStorage.setItem("corral.user", user);
    }, account);
  }
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
  let bytes = 0;
  let requests = 0;
  cdp.on("Network.loadingFinished", (e) => {
    bytes += e.encodedDataLength;
    requests += 1;
  });
  const started = Date.now();
  await page.goto(base + "/", { waitUntil: "commit" });
  await page.waitForSelector(signedIn ? "body[data-ready=true]" : "#register", { state: "visible" });
  const tti = Date.now() - started;
  const nav = await page.evaluate(() => performance.getEntriesByType("navigation")[0].toJSON());
  await context.close();
  return { tti, bytes, requests, dcl: nav.domContentLoadedEventEnd };
}

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { median: at(0.5), p95: at(0.95), min: sorted[0], max: sorted[sorted.length - 1] };
}

const account = await register();
const report = {};
for (const [name, signedIn] of [
  ["new_visitor_sign_in_form", false],
  ["signed_in_app_connected", true],
]) {
  await once(signedIn, account); // warm the node's side (first connection, first query)
  const samples = [];
  for (let i = 0; i < runs; i++) samples.push(await once(signedIn, account));
  report[name] = {
    runs,
    bytes: stats(samples.map((s) => s.bytes)),
    requests: stats(samples.map((s) => s.requests)),
    time_to_interactive_ms: stats(samples.map((s) => s.tti)),
    dom_content_loaded_ms: stats(samples.map((s) => Math.round(s.dcl))),
  };
}
console.log(JSON.stringify(report, null, 2));
await browser.close();
