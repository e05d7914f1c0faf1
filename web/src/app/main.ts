// The user app (served at `/`): sign in, then rooms and DMs, the feed, people to follow,
// promotions with the claim button, and my claims.
import { byId, h, replace } from "../lib/dom.ts";
import { signIn } from "../lib/login.ts";
import { type Account, clearSession, explain, newClient, savedAccount } from "../lib/session.ts";
import { mountShell } from "../lib/shell.ts";
import { claimsTab } from "./claims.ts";
import { feedTab } from "./feed.ts";
import { peopleTab } from "./people.ts";
import { promotionsTab } from "./promotions.ts";
import { roomsTab } from "./rooms.ts";

async function start(root: HTMLElement, account: Account): Promise<void> {
  const client = newClient();
  try {
    await client.connect();
  } catch (err) {
    clearSession();
    replace(root, h("p", { class: "form-error", attrs: { role: "alert" } }, explain(err)), h("button", { type: "button", on: { click: () => location.reload() } }, "Sign in again"));
    return;
  }
  const tabs = [
    { id: "promotions", label: "Promotions", render: promotionsTab(client) },
    { id: "claims", label: "My claims", render: claimsTab(client) },
    { id: "rooms", label: "Rooms", render: roomsTab(client, account.user_id) },
    { id: "feed", label: "Feed", render: feedTab(client, account.user_id) },
    { id: "people", label: "People", render: peopleTab(client, account.user_id) },
  ];
  const consoleLink = account.role === "user" ? null : h("a", { href: "/console", class: "small" }, "Merchant console");
  mountShell(root, "Corral", account, client, tabs, consoleLink ?? undefined);
  document.body.dataset.ready = "true";
}

async function main(): Promise<void> {
  const root = byId("root");
  const account = savedAccount() ?? (await signIn(root, "Corral", "Chat with other animal lovers and claim animals from live promotions."));
  await start(root, account);
}

void main();
