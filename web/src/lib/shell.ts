// The frame of both apps once signed in: a header with the app name, the account, the
// connection state and a sign-out button, a tab bar, and the panel of the chosen tab
// (remembered in the URL hash so a reload stays put).
import type { CorralClient } from "@corral/client";
import { h, replace } from "./dom.ts";
import { type Account, clearSession } from "./session.ts";

export interface Tab {
  id: string;
  label: string;
  /** Renders the tab into its panel; may return a clean-up run when another tab opens. */
  render(panel: HTMLElement): void | (() => void);
}

const STATE_TEXT: Record<string, string> = {
  idle: "Offline",
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  closed: "Offline",
};

/** Mounts the shell into `root` and opens the tab named by the hash (or the first); returns
 * a function opening a tab by id. */
export function mountShell(root: HTMLElement, title: string, account: Account, client: CorralClient, tabs: Tab[], extra?: HTMLElement): (id: string) => void {
  const state = h("span", { class: "conn", id: "conn", attrs: { role: "status" } }, STATE_TEXT[client.state] ?? client.state);
  client.onState((s) => {
    state.textContent = STATE_TEXT[s] ?? s;
    state.dataset.state = s;
  });
  state.dataset.state = client.state;
  const signOut = h(
    "button",
    {
      type: "button",
      class: "secondary small",
      on: {
        click: () => {
          client.close();
          clearSession();
          location.reload();
        },
      },
    },
    "Sign out",
  );
  const nav = h("nav", { class: "tabs", attrs: { role: "tablist" } });
  const panel = h("section", { class: "panel", id: "panel", attrs: { role: "tabpanel" } });
  let cleanup: void | (() => void);
  const open = (id: string) => {
    const tab = tabs.find((t) => t.id === id) ?? tabs[0]!;
    if (cleanup) cleanup();
    for (const b of nav.querySelectorAll("button")) b.setAttribute("aria-selected", String(b.dataset.tab === tab.id));
    replace(panel);
    cleanup = tab.render(panel);
    if (location.hash !== `#${tab.id}`) history.replaceState(null, "", `#${tab.id}`);
  };
  for (const t of tabs) {
    nav.appendChild(h("button", { type: "button", attrs: { role: "tab", "data-tab": t.id }, on: { click: () => open(t.id) } }, t.label));
  }
  replace(
    root,
    h(
      "header",
      { class: "top" },
      h("strong", { class: "brand" }, title),
      h("span", { class: "who" }, "Signed in as ", h("b", { id: "me" }, account.username), ` (${account.role})`),
      state,
      extra ?? null,
      signOut,
    ),
    nav,
    panel,
  );
  open(location.hash.slice(1));
  return open;
}
