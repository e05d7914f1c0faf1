// The merchant console (served at `/console`): sign in, become a merchant, then animals,
// promotions (create, edit, cancel, broadcast), the live view of one promotion, and for
// admins the merchant approvals and the audit log.
import type { CorralClient } from "@corral/client";
import type { ListedActivity } from "../lib/activities.ts";
import { byId, field, h, replace } from "../lib/dom.ts";
import { signIn } from "../lib/login.ts";
import { type Account, api, clearSession, explain, newClient, saveSession, savedAccount } from "../lib/session.ts";
import { mountShell } from "../lib/shell.ts";
import { approvalsTab, auditTab } from "./admin.ts";
import { animalsTab } from "./animals.ts";
import { liveView } from "./live.ts";
import { promotionsTab } from "./promotions.ts";

interface Me {
  role: Account["role"];
  merchant: { name: string; approved: boolean } | null;
}

/** For a signed-in user who is not a merchant yet: apply (or see the application wait). */
function becomeMerchant(root: HTMLElement, account: Account, me: Me): void {
  const signOut = h("button", { type: "button", class: "secondary", on: { click: () => (clearSession(), location.reload()) } }, "Sign out");
  if (me.merchant) {
    const approved = me.merchant.approved;
    replace(
      root,
      h(
        "div",
        { class: "card narrow" },
        h("h1", null, me.merchant.name),
        h("p", null, approved ? "Your shop is approved: sign in again to open the console." : "Your application is waiting for an administrator. Come back later."),
        signOut,
      ),
    );
    return;
  }
  const name = h("input", { name: "shop", id: "shop-name", maxLength: 100, required: true });
  const f = field("Farm or shop name", name, "Shown to people on your promotions");
  replace(
    root,
    h(
      "form",
      {
        class: "card narrow",
        on: {
          submit: async (ev) => {
            ev.preventDefault();
            f.error.textContent = "";
            if (!name.value.trim()) {
              f.error.textContent = "Enter the name of your farm or shop.";
              return;
            }
            try {
              const applied = await api.post<{ token: string | null; approved: boolean }>("/api/v1/merchants", { name: name.value.trim() });
              if (applied.token) saveSession(applied.token, { ...account, role: account.role === "admin" ? "admin" : "merchant" });
              location.reload();
            } catch (err) {
              f.error.textContent = explain(err);
            }
          },
        },
      },
      h("h1", null, "Become a merchant"),
      h("p", { class: "muted" }, `Signed in as ${account.username}. Run promotions of your animals for people to claim.`),
      f.row,
      h("div", { class: "actions" }, h("button", { type: "submit", id: "become-merchant" }, "Become a merchant"), signOut),
    ),
  );
}

function consoleTabs(client: CorralClient, account: Account, root: HTMLElement): void {
  let live: ListedActivity | null = null;
  let open: (id: string) => void = () => undefined;
  const tabs = [
    { id: "promotions", label: "Promotions", render: promotionsTab(account.user_id, (a) => ((live = a), open("live"))) },
    { id: "animals", label: "Animals", render: animalsTab() },
    {
      id: "live",
      label: "Live view",
      render: (panel: HTMLElement) => {
        if (!live) {
          replace(panel, h("p", { class: "muted" }, "Open a promotion's live view from the Promotions tab."));
          return;
        }
        return liveView(client, live, panel);
      },
    },
    ...(account.role === "admin"
      ? [
          { id: "approvals", label: "Approvals", render: approvalsTab() },
          { id: "audit", label: "Audit log", render: auditTab() },
        ]
      : []),
  ];
  open = mountShell(root, "Corral console", account, client, tabs, h("a", { href: "/", class: "small" }, "User app"));
}

async function main(): Promise<void> {
  const root = byId("root");
  const account = savedAccount() ?? (await signIn(root, "Corral console", "For farms and shops running promotions."));
  let me: Me;
  try {
    me = await api.get<Me>("/api/v1/me");
  } catch (err) {
    clearSession();
    replace(root, h("p", { class: "form-error", attrs: { role: "alert" } }, explain(err)), h("button", { type: "button", on: { click: () => location.reload() } }, "Sign in again"));
    return;
  }
  if (account.role === "user") {
    becomeMerchant(root, account, me);
    document.body.dataset.ready = "true";
    return;
  }
  const client = newClient();
  await client.connect();
  consoleTabs(client, account, root);
  document.body.dataset.ready = "true";
}

void main();
