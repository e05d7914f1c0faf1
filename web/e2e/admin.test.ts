// End-to-end, with merchant applications waiting for an admin (`merchants.auto_approve =
// false`): a user applies in the console and waits; an admin (seeded with `corral admin
// seed-users --role admin`) approves the application and finds it in the audit log; the new
// merchant signs in again and gets the console.
import { strict as assert } from "node:assert";
import { after, before, test } from "node:test";
import type { Browser } from "playwright-core";
import { type Node, PASSWORD, launchBrowser, newPage, openTab, register, startNode, uniqueName } from "./node.ts";

let node: Node;
let browser: Browser;

before(async () => {
  node = await startNode({ env: { CORRAL_MERCHANTS__AUTO_APPROVE: "false" }, seed: { prefix: "boss", role: "admin", password: PASSWORD } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

test("an admin approves a merchant application and sees it in the audit log", async () => {
  const applicant = await newPage(browser);
  const name = uniqueName("farmer");
  await register(applicant, node.base, "/console", name);
  await applicant.fill("#shop-name", "Hilltop goats");
  await applicant.click("#become-merchant");
  await applicant.waitForSelector("text=waiting for an administrator");

  const admin = await newPage(browser);
  await register(admin, node.base, "/console", "boss0", "#login");
  await admin.waitForSelector("body[data-ready=true] nav.tabs");
  await openTab(admin, "approvals");
  const row = admin.locator("#pending li", { hasText: "Hilltop goats" });
  await row.waitFor();
  await row.locator("button", { hasText: "Approve" }).click();
  await admin.waitForSelector("#pending >> text=No applications waiting.");
  await openTab(admin, "audit");
  await admin.waitForSelector("table.audit td >> text=merchant.approve");
  const actions = await admin.locator("table.audit tbody tr td:nth-child(3)").allTextContents();
  assert.deepEqual(actions.slice(0, 2), ["merchant.approve", "merchant.apply"], "newest first");

  // Approved: a new sign-in carries the merchant role.
  await applicant.reload();
  await applicant.waitForSelector("text=sign in again");
  await applicant.click("button >> text=Sign out");
  await applicant.fill("input[name=username]", name);
  await applicant.fill("input[name=password]", PASSWORD);
  await applicant.click("#login");
  await applicant.waitForSelector("body[data-ready=true] nav.tabs button[data-tab=animals]");
  assert.equal(await applicant.locator("#me").textContent(), name);
  await admin.context().close();
  await applicant.context().close();
});
