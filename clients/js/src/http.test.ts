//! Unit tests of `CorralApi` against a local HTTP server: bearer token, JSON bodies, and errors
//! mapped to `CorralError` with the server's code.

import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { CorralError } from "./errors.js";
import { CorralApi } from "./http.js";

async function serve(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => server.close(() => r())) };
}

test("JSON in and out, with the current bearer token", async () => {
  const seen: { method?: string; url?: string; auth?: string; body: string }[] = [];
  const srv = await serve((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, body });
      res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ room_id: 12 }));
    });
  });
  let token = "one";
  const api = new CorralApi({ baseUrl: srv.url, token: () => token });
  assert.deepEqual(await api.post("/api/v1/rooms", { name: "barn" }), { room_id: 12 });
  token = "two";
  await api.get("/api/v1/rooms");
  assert.deepEqual(seen, [
    { method: "POST", url: "/api/v1/rooms", auth: "Bearer one", body: '{"name":"barn"}' },
    { method: "GET", url: "/api/v1/rooms", auth: "Bearer two", body: "" },
  ]);
  await srv.close();
});

test("error bodies become CorralError with the server's code and the HTTP status", async () => {
  const srv = await serve((req, res) => {
    if (req.url === "/taken") {
      res.writeHead(409, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "conflict", message: "username taken" } }));
    } else {
      res.writeHead(502).end("<html>bad gateway</html>");
    }
  });
  const api = new CorralApi({ baseUrl: srv.url });
  await assert.rejects(api.post("/taken", {}), (e: unknown) => e instanceof CorralError && e.code === "conflict" && e.status === 409);
  await assert.rejects(api.get("/proxy"), (e: unknown) => e instanceof CorralError && e.code === "protocol" && e.status === 502);
  await srv.close();
  await assert.rejects(api.get("/gone"), (e: unknown) => e instanceof CorralError && e.code === "network");
});
