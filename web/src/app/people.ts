// People and merchants to follow: the user's own invite code (friends who register with it
// count for "bring a friend" promotions), look a user up by name, see the approved merchants,
// and follow or unfollow them (their posts then reach the feed live).
import type { CorralClient } from "@corral/client";
import { field, h, replace, toast } from "../lib/dom.ts";
import { api, explain } from "../lib/session.ts";

interface Profile {
  user_id: number;
  username: string;
  role: string;
  followers: number;
  following: number;
}

interface MerchantPage {
  merchants: { merchant_id: number; name: string }[];
}

function followButton(client: CorralClient, user: number): HTMLButtonElement {
  let following = false;
  const btn = h("button", { type: "button", class: "small", attrs: { "data-follow": String(user) } }, "Follow");
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    try {
      if (following) await client.unfollow(user);
      else await client.follow(user);
      following = !following;
      btn.textContent = following ? "Unfollow" : "Follow";
      btn.className = following ? "secondary small" : "small";
    } catch (err) {
      toast(explain(err), "error");
    } finally {
      btn.disabled = false;
    }
  });
  return btn;
}

export function peopleTab(client: CorralClient, me: number) {
  return (panel: HTMLElement) => {
    const result = h("div", { id: "person" });
    const name = h("input", { name: "username", id: "find-user", required: true, placeholder: "username" });
    const f = field("Find someone by username", name);
    const find = h(
      "form",
      {
        class: "card compact",
        on: {
          submit: async (ev) => {
            ev.preventDefault();
            f.error.textContent = "";
            replace(result);
            try {
              const found = await api.get<{ user_id: number }>(`/api/v1/usernames/${encodeURIComponent(name.value.trim())}`);
              const p = await api.get<Profile>(`/api/v1/users/${found.user_id}`);
              replace(
                result,
                h(
                  "div",
                  { class: "card person" },
                  h("h3", null, p.username),
                  h("p", { class: "muted" }, `${p.role} · ${p.followers} followers · follows ${p.following}`),
                  p.user_id === me ? h("p", { class: "muted" }, "This is you.") : followButton(client, p.user_id),
                ),
              );
            } catch (err) {
              f.error.textContent = explain(err);
            }
          },
        },
      },
      f.row,
      h("button", { type: "submit" }, "Find"),
    );
    const merchants = h("ul", { class: "list", id: "merchants" });
    const code = h("strong", { id: "invite-code" });
    const invite = h("div", { class: "card compact" }, h("p", null, "Your invite code: ", code), h("p", { class: "muted" }, "Friends who sign up with it count for bring-a-friend promotions."));
    replace(panel, h("h2", null, "People"), invite, find, result, h("h2", null, "Farms and shops"), merchants);
    api
      .get<{ invite_code: string }>("/api/v1/me")
      .then((me) => (code.textContent = me.invite_code))
      .catch((err) => toast(explain(err), "error"));
    api
      .get<MerchantPage>("/api/v1/merchants?limit=50")
      .then((page) => {
        if (!page.merchants.length) merchants.appendChild(h("li", { class: "muted" }, "No merchants yet."));
        for (const m of page.merchants) {
          merchants.appendChild(h("li", { class: "row" }, h("span", null, m.name), m.merchant_id === me ? null : followButton(client, m.merchant_id)));
        }
      })
      .catch((err) => toast(explain(err), "error"));
  };
}
