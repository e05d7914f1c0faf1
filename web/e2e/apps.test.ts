// End-to-end: the user app and the merchant console in Chromium against a real node. Two
// people chat live; a merchant runs a promotion that a user claims at its start while the
// console shows the claim; a coupon promotion's winner sees the code the merchant loaded;
// markup in user-supplied text renders as text and runs nothing.
// Screenshots (desktop and phone) are written to docs/screenshots for the README.
import { strict as assert } from "node:assert";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { type Node, PHONE, launchBrowser, newPage, openTab, register, screenshotDir, startNode, uniqueName } from "./node.ts";

const XSS_IMG = `<img src=x onerror="window.__pwned='img'">`;
const XSS_SCRIPT = `<script>window.__pwned='script'</script>`;

let node: Node;
let browser: Browser;

before(async () => {
  // Every account of this file registers from 127.0.0.1: lift the per-address sign-up limit
  // (5 at once, then 6 a minute), which is not what these tests are about.
  node = await startNode({ env: { CORRAL_AUTH__REGISTER_PER_IP_PER_MIN: "600", CORRAL_AUTH__REGISTER_PER_IP_BURST: "100" } });
  browser = await launchBrowser();
  mkdirSync(screenshotDir, { recursive: true });
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(screenshotDir, `${name}.png`) });
}

/** Nothing injected ran and no injected element exists. */
async function assertInert(page: Page): Promise<void> {
  assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: string }).__pwned), undefined, "injected script ran");
  assert.equal(await page.locator("img[src=x]").count(), 0, "injected <img> was parsed as HTML");
  assert.equal(await page.locator("#root script").count(), 0, "injected <script> was parsed as HTML");
}

/** The same screen on a phone-sized viewport, signed in with the same session. */
async function phoneShot(page: Page, name: string, show: (phone: Page) => Promise<void>): Promise<void> {
  const storage = await page.context().storageState();
  const context = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true, storageState: storage });
  const phone = await context.newPage();
  await show(phone);
  const width = await phone.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= PHONE.width + 1, `${name}: the page scrolls sideways on a phone (${width}px)`);
  await shot(phone, name);
  await context.close();
}

test("two people chat in a room and see each other's messages live", async () => {
  const ann = await newPage(browser);
  const bob = await newPage(browser);
  await register(ann, node.base, "/", uniqueName("ann"));
  await ann.waitForSelector("body[data-ready=true]");
  await openTab(ann, "rooms");
  await ann.fill("#new-room-name", "The barn");
  await ann.click("#create-room");
  await ann.waitForSelector("#room-title >> text=The barn");

  await register(bob, node.base, "/", uniqueName("bob"));
  await bob.waitForSelector("body[data-ready=true]");
  await openTab(bob, "rooms");
  await bob.click("#room-list button >> text=The barn");
  await bob.waitForSelector("#room-title >> text=The barn");

  await ann.fill("#message-text", "Morning! The lambs are out.");
  await ann.click("#send");
  await bob.waitForSelector("#messages .text >> text=Morning! The lambs are out.");
  await bob.fill("#message-text", "On my way to see them");
  await bob.press("#message-text", "Enter");
  await ann.waitForSelector("#messages .text >> text=On my way to see them");
  // Each message once, in order, on both sides.
  for (const page of [ann, bob]) {
    await page.waitForSelector("#messages li:nth-child(2)");
    assert.deepEqual(await page.locator("#messages .text").allTextContents(), ["Morning! The lambs are out.", "On my way to see them"]);
  }
  await shot(bob, "chat-desktop");
  await phoneShot(bob, "chat-phone", async (phone) => {
    await phone.goto(`${node.base}/#rooms`);
    await phone.click("#room-list button >> text=The barn");
    await phone.waitForSelector("#messages .text >> text=On my way to see them");
  });
  await ann.context().close();
  await bob.context().close();
});

test("a merchant runs a promotion, a user claims it at the start, the console shows the claim live", async () => {
  const merchant = await newPage(browser);
  await register(merchant, node.base, "/console", uniqueName("farm"));
  await merchant.fill("#shop-name", `Meadow farm ${XSS_SCRIPT}`);
  await merchant.click("#become-merchant");
  await merchant.waitForSelector("body[data-ready=true] nav.tabs");

  // An animal, its name carrying markup.
  await openTab(merchant, "animals");
  await merchant.click("#new-animal");
  await merchant.click("#save-animal");
  assert.match(await merchant.locator("#animal-form .field-error").first().textContent() ?? "", /name/i, "empty form: the error sits by its field");
  const animalName = `Dolly ${XSS_IMG}`;
  await merchant.fill("#animal-name", animalName);
  await merchant.fill("#animal-species", "sheep");
  await merchant.fill("#animal-price", "12.50");
  await merchant.click("#save-animal");
  await merchant.waitForSelector("#animals .animal-name");
  assert.equal(await merchant.locator("#animals .animal-name").first().textContent(), animalName);
  await assertInert(merchant);

  // A promotion starting a few seconds from now; a wrong end is caught next to its field first.
  await openTab(merchant, "promotions");
  await merchant.click("#new-promo");
  await merchant.fill("#promo-title", "Spring lambs");
  const startsAt = await merchant.evaluate(() => Date.now() + 9000);
  const local = (ms: number) =>
    merchant.evaluate((t) => {
      const d = new Date(t);
      const p = (n: number) => String(n).padStart(2, "0");
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    }, ms);
  await merchant.fill("#promo-starts", await local(startsAt));
  await merchant.fill("#promo-ends", await local(startsAt - 60_000));
  await merchant.check("#promo-form input[type=checkbox][data-animal]");
  await merchant.click("#save-promo");
  const endsError = merchant.locator("#promo-ends ~ .field-error");
  assert.match((await endsError.textContent()) ?? "", /after the start/);
  await merchant.fill("#promo-ends", await local(startsAt + 600_000));
  await merchant.click("#save-promo");
  await merchant.waitForSelector("#my-promotions [data-live]");
  await merchant.click("#my-promotions [data-live]");
  await merchant.waitForSelector("#live-claims");

  // A user watches the countdown and claims as soon as the button opens.
  const user = await newPage(browser);
  await register(user, node.base, "/", uniqueName("kim"));
  await user.waitForSelector("body[data-ready=true]");
  await openTab(user, "promotions");
  const card = user.locator("#upcoming-promotions li.promotion").first();
  await card.waitFor();
  assert.match((await card.locator(".countdown").textContent()) ?? "", /Starts in \d/);
  assert.equal(await card.locator("button.claim").isDisabled(), true, "claim closed before the start");
  assert.equal(await card.locator(".animals b").first().textContent(), animalName);
  await shot(user, "promotions-desktop");
  await phoneShot(user, "promotions-phone", async (phone) => {
    await phone.goto(`${node.base}/#promotions`);
    await phone.locator("#upcoming-promotions li.promotion").first().waitFor();
  });
  await card.locator("button.claim:enabled").waitFor({ timeout: 20_000 });
  const clickedAt = await user.evaluate(() => Date.now());
  assert.ok(clickedAt >= startsAt - 1000, "the button opened at the start, not before");
  await card.locator("button.claim").click();
  await card.locator(".claim-result[data-status=held]").waitFor();
  assert.match((await card.locator(".claim-result").textContent()) ?? "", /^held/);
  await assertInert(user);

  // The console shows the claim and the summary without a reload.
  await merchant.waitForSelector("#live-claims [data-claim] [data-status=held]");
  await merchant.waitForSelector("#summary [data-summary=held] >> text=1");
  assert.equal(await merchant.locator("#stock-chart svg path.chart-line").count(), 1);
  await assertInert(merchant);
  await shot(merchant, "console-live-desktop");
  await phoneShot(merchant, "console-phone", async (phone) => {
    await phone.goto(`${node.base}/console#promotions`);
    await phone.locator("#my-promotions [data-live]").first().click();
    await phone.waitForSelector("#live-claims [data-claim]");
  });

  // My claims: the hold with its time left.
  await openTab(user, "claims");
  await user.waitForSelector("#claims [data-claim-status][data-status=held]");
  assert.match((await user.locator("#claims .time-left").first().textContent()) ?? "", /left to pay/);
  await shot(user, "claims-desktop");

  // Giving the hold back asks first, then the console sees the change without a reload.
  await user.click("#claims button.danger");
  await user.click("dialog.confirm button.danger");
  await user.waitForSelector("#claims [data-claim-status][data-status=cancelled]");
  await merchant.waitForSelector("#live-claims [data-claim] [data-status=cancelled]");
  await merchant.waitForSelector("#stock-now >> text=1 of 1 left");
  await merchant.context().close();
  await user.context().close();
});

test("markup in messages, room names, shop and animal names renders as text and runs nothing", async () => {
  const eve = await newPage(browser);
  const reader = await newPage(browser);
  // Usernames cannot carry markup at all: the server refuses them.
  const refused = await fetch(`${node.base}/api/v1/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: XSS_IMG, password: "correct-horse-battery" }),
  });
  assert.equal(refused.status, 400);

  await register(eve, node.base, "/", uniqueName("eve"));
  await eve.waitForSelector("body[data-ready=true]");
  await openTab(eve, "rooms");
  const roomName = `Room ${XSS_IMG}`;
  await eve.fill("#new-room-name", roomName);
  await eve.click("#create-room");
  await eve.waitForSelector("#room-title");
  for (const [i, text] of [XSS_IMG, XSS_SCRIPT].entries()) {
    await eve.fill("#message-text", text);
    await eve.click("#send");
    await eve.waitForSelector(`#messages li:nth-child(${i + 1})`);
  }
  await openTab(eve, "feed");
  await eve.fill("#post-text", `Post ${XSS_SCRIPT}`);
  await eve.click("#publish");
  await eve.waitForSelector("#posts .text");

  await register(reader, node.base, "/", uniqueName("rex"));
  await reader.waitForSelector("body[data-ready=true]");
  await openTab(reader, "rooms");
  await reader.locator("#room-list button", { hasText: "Room <img" }).click();
  await reader.waitForSelector("#messages li:nth-child(2)");
  assert.deepEqual(await reader.locator("#messages .text").allTextContents(), [XSS_IMG, XSS_SCRIPT]);
  assert.equal(await reader.locator("#room-title").textContent(), roomName);
  // Shop and animal names from the earlier test appear in the promotion listing as text.
  await openTab(reader, "promotions");
  await reader.locator("li.promotion").first().waitFor();
  const shop = (await reader.locator("li.promotion .promo-head .muted").first().textContent()) ?? "";
  assert.ok(shop.includes(XSS_SCRIPT), `shop name shown as text: ${shop}`);
  await openTab(reader, "people");
  await reader.locator("#merchants li", { hasText: "<script>" }).first().waitFor();
  for (const page of [eve, reader]) await assertInert(page);
  await eve.context().close();
  await reader.context().close();
});

test("following, the live feed with likes and comments, DMs and older history", async () => {
  const annName = uniqueName("ann");
  const bobName = uniqueName("bob");
  const ann = await newPage(browser);
  const bob = await newPage(browser);
  await register(ann, node.base, "/", annName);
  await ann.waitForSelector("body[data-ready=true]");
  await register(bob, node.base, "/", bobName);
  await bob.waitForSelector("body[data-ready=true]");

  // Ann follows Bob, then watches her feed while Bob posts.
  await openTab(ann, "people");
  await ann.fill("#find-user", bobName);
  await ann.press("#find-user", "Enter");
  await ann.click("#person [data-follow]");
  await ann.waitForSelector("#person [data-follow] >> text=Unfollow");
  await openTab(ann, "feed");
  await openTab(bob, "feed");
  await bob.fill("#post-text", "Twin lambs born this morning");
  await bob.click("#publish");
  await bob.waitForSelector("#posts .text >> text=Twin lambs born this morning");
  const annPost = ann.locator("#posts li.post", { hasText: "Twin lambs born this morning" });
  await annPost.waitFor();

  // Her like and her comment reach Bob's screen without a reload.
  await annPost.locator("button", { hasText: "Like" }).click();
  const bobPost = bob.locator("#posts li.post").first();
  await bobPost.locator("button", { hasText: "Like" }).locator(".count >> text=1").waitFor();
  await annPost.locator("button", { hasText: "Comments" }).click();
  await annPost.locator("input[name=comment]").fill("Congratulations!");
  await annPost.locator("input[name=comment]").press("Enter");
  await annPost.locator(".comments .text >> text=Congratulations!").waitFor();
  await bobPost.locator("button", { hasText: "Comments" }).locator(".count >> text=1").waitFor();
  await shot(bob, "feed-desktop");

  // A DM by username, then enough messages that the oldest need paging.
  await openTab(ann, "rooms");
  await ann.fill("#dm-to", bobName);
  await ann.fill("#dm-text", "message 1");
  await ann.press("#dm-text", "Enter");
  await ann.waitForSelector("#messages .text >> text=message 1");
  for (let i = 2; i <= 35; i++) {
    await ann.fill("#message-text", `message ${i}`);
    await ann.press("#message-text", "Enter");
    await ann.locator(`#messages li[data-seq="${i}"]`).waitFor();
  }
  await openTab(bob, "rooms");
  await bob.locator("#room-list button", { hasText: "DM with" }).click();
  await bob.waitForSelector("#messages .text >> text=message 35");
  assert.equal(await bob.locator("#messages li").count(), 30, "the newest 30 first");
  await bob.click("#older");
  // Quoted: an exact match (unquoted, "message 1" would match "message 10" already shown).
  await bob.waitForSelector('#messages .text >> text="message 1"');
  const texts = await bob.locator("#messages .text").allTextContents();
  assert.deepEqual(texts, Array.from({ length: 35 }, (_, i) => `message ${i + 1}`), "every message once, in order");
  await ann.context().close();
  await bob.context().close();
});

test("a merchant loads coupon codes before the start, the winner sees their code", async () => {
  const merchant = await newPage(browser);
  await register(merchant, node.base, "/console", uniqueName("shop"));
  await merchant.fill("#shop-name", "Coupon farm");
  await merchant.click("#become-merchant");
  await merchant.waitForSelector("body[data-ready=true] nav.tabs");
  await openTab(merchant, "animals");
  await merchant.click("#new-animal");
  await merchant.fill("#animal-name", "Bella");
  await merchant.fill("#animal-species", "goat");
  await merchant.fill("#animal-price", "5");
  await merchant.click("#save-animal");
  await merchant.waitForSelector("#animals .animal-name");

  // A promotion whose winners get a coupon code.
  await openTab(merchant, "promotions");
  await merchant.click("#new-promo");
  await merchant.fill("#promo-title", "Goat coupons");
  const startsAt = await merchant.evaluate(() => Date.now() + 9000);
  const local = (ms: number) =>
    merchant.evaluate((t) => {
      const d = new Date(t);
      const p = (n: number) => String(n).padStart(2, "0");
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    }, ms);
  await merchant.fill("#promo-starts", await local(startsAt));
  await merchant.fill("#promo-ends", await local(startsAt + 600_000));
  await merchant.check("#promo-form input[type=checkbox][data-animal]");
  await merchant.check("#rule-coupon");
  await merchant.click("#save-promo");
  const codes = merchant.locator("#my-promotions textarea[data-coupons]").first();
  await codes.waitFor();
  assert.match((await merchant.locator("#my-promotions [data-rules]").first().textContent()) ?? "", /coupon code for each winner/);
  await codes.fill("GOAT-1\n\nGOAT-1\n");
  await merchant.locator("#my-promotions form:has(textarea[data-coupons]) button[type=submit]").first().click();
  await merchant.waitForSelector("text=Added 1 codes");

  // A user claims at the start and sees the code, then finds it in My claims.
  const user = await newPage(browser);
  await register(user, node.base, "/", uniqueName("lee"));
  await user.waitForSelector("body[data-ready=true]");
  await openTab(user, "promotions");
  const card = user.locator("#upcoming-promotions li.promotion", { hasText: "Goat coupons" }).first();
  await card.waitFor();
  await card.locator("button.claim:enabled").waitFor({ timeout: 20_000 });
  await card.locator("button.claim").click();
  await card.locator(".claim-result[data-status=held]").waitFor();
  assert.match((await card.locator(".claim-result").textContent()) ?? "", /your coupon code: GOAT-1/);
  await openTab(user, "claims");
  await user.waitForSelector("#claims [data-coupon] >> text=Your coupon code: GOAT-1");
  await assertInert(user);
  await merchant.context().close();
  await user.context().close();
});
