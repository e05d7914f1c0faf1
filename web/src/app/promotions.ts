// Promotions: the live and upcoming ones, each watched live (stock, start, end), with who may
// take part and what this user still misses (kept current by the server's eligibility
// pushes), a countdown on the server's clock that opens the claim button exactly at
// `starts_at`, and a choice of animal. A claim answers `held` with the time left to pay.
import { type ActivityWatch, type CorralClient, countdown } from "@corral/client";
import { h, replace, toast } from "../lib/dom.ts";
import { duration, price, when } from "../lib/format.ts";
import type { ActivityPage, ListedActivity } from "../lib/activities.ts";
import { describeRules, unmetWords } from "../lib/rules.ts";
import { api, explain } from "../lib/session.ts";

const CLAIM_ERRORS: Record<string, string> = {
  not_started: "Not open yet: wait for the countdown.",
  ended: "This promotion has ended.",
  sold_out: "Sold out: every animal is taken.",
  limit_reached: "You already hold as many as this promotion allows.",
  conflict: "That animal was just taken: pick another or choose 'any'.",
};

function promotionCard(client: CorralClient, a: ListedActivity): { el: HTMLElement; stop: () => void } {
  const timer = h("strong", { class: "countdown", attrs: { "data-countdown": String(a.activity_id) } }, "…");
  const stock = h("span", { class: "stock" }, `${a.slots} of ${a.slots} left`);
  const pick = h("select", { name: "item", attrs: { "aria-label": "Which animal" } }, h("option", { value: "" }, "Any animal"));
  for (const i of a.items) pick.appendChild(h("option", { value: String(i.item_id) }, `${i.animal_name} (${i.species}) — ${price(i.price_cents)}`));
  const claim = h("button", { type: "button", class: "claim", disabled: true, attrs: { "data-claim": String(a.activity_id) } }, "Claim");
  const result = h("p", { class: "claim-result", attrs: { role: "status", "data-result": String(a.activity_id) } });
  const who = describeRules(a.rules, when);
  const missing = h("p", { class: "muted", attrs: { role: "status", "data-eligibility": String(a.activity_id) } });
  let eligible = true;
  const showEligibility = (w: ActivityWatch) => {
    eligible = w.eligible;
    missing.textContent = w.eligible ? "" : `To take part: ${w.unmet.map(unmetWords).join("; ")}`;
  };
  let watch: ActivityWatch | null = null;
  let open = a.state === "live";
  let over = a.state === "ended" || a.state === "cancelled";

  const render = () => {
    const now = client.clock.now();
    if (over) {
      timer.textContent = a.state === "cancelled" ? "Cancelled" : "Ended";
    } else if (now < a.starts_at) {
      timer.textContent = `Starts in ${duration(a.starts_at - now)}`;
    } else {
      timer.textContent = `Live — ends in ${duration(a.ends_at - now)}`;
    }
    claim.disabled = !open || over || !eligible;
  };
  const tick = setInterval(render, 250);
  const opener = countdown(a.starts_at, client.clock, {
    onOpen: () => {
      open = true;
      render();
    },
  });

  client
    .watchActivity(a.activity_id, {
      onChange: (w) => {
        showEligibility(w);
        if (w.stockLeft !== undefined && w.stockLeft !== null) stock.textContent = `${w.stockLeft} of ${a.slots} left`;
        if (w.state === "ended" || w.state === "cancelled") {
          over = true;
          a.state = w.state;
        }
        render();
      },
    })
    .then((w) => {
      watch = w;
      if (w.stockLeft !== undefined && w.stockLeft !== null) stock.textContent = `${w.stockLeft} of ${a.slots} left`;
    })
    .catch((err) => toast(explain(err), "error"));

  claim.addEventListener("click", async () => {
    claim.disabled = true;
    result.textContent = "Claiming…";
    try {
      const item = pick.value ? Number(pick.value) : undefined;
      const held = await client.claim(a.activity_id, item === undefined ? {} : { item });
      const coupon = held.coupon_code ? ` · your coupon code: ${held.coupon_code}` : "";
      result.textContent = `${held.status}: pay within ${duration(held.expires_at - client.clock.now())}${coupon} (see My claims)`;
      result.dataset.status = held.status;
    } catch (err) {
      const code = (err as { code?: string }).code ?? "";
      result.textContent = CLAIM_ERRORS[code] ?? explain(err);
      result.dataset.status = "error";
    } finally {
      render();
    }
  });
  render();

  const el = h(
    "li",
    { class: "card promotion", attrs: { "data-activity": String(a.activity_id) } },
    h("div", { class: "promo-head" }, h("h3", null, a.title), h("span", { class: "muted" }, "by ", a.merchant_name || `merchant #${a.merchant_id}`)),
    h("p", { class: "muted" }, `${when(a.starts_at)} → ${when(a.ends_at)} · up to ${a.per_user_limit} per person · hold ${duration(a.hold_seconds * 1000)}`),
    h("ul", { class: "animals" }, ...a.items.map((i) => h("li", null, h("b", null, i.animal_name), ` ${i.species} · ${price(i.price_cents)} · ${i.slots} slot${i.slots === 1 ? "" : "s"}`))),
    who.length ? h("p", { class: "muted" }, `Who can take part: ${who.join(" · ")}`) : null,
    h("div", { class: "promo-live" }, timer, stock),
    h("div", { class: "actions" }, pick, claim),
    missing,
    result,
  );
  return {
    el,
    stop: () => {
      clearInterval(tick);
      opener.stop();
      watch?.unsubscribe();
    },
  };
}

export function promotionsTab(client: CorralClient) {
  return (panel: HTMLElement) => {
    const live = h("ol", { class: "list", id: "live-promotions" });
    const upcoming = h("ol", { class: "list", id: "upcoming-promotions" });
    const stops: (() => void)[] = [];
    const fill = async (list: HTMLElement, state: "live" | "upcoming", empty: string) => {
      try {
        const page = await api.get<ActivityPage>(`/api/v1/activities?state=${state}&limit=20`);
        replace(list);
        if (!page.activities.length) list.appendChild(h("li", { class: "muted" }, empty));
        const sorted = [...page.activities].sort((x, y) => x.starts_at - y.starts_at);
        for (const a of sorted) {
          const card = promotionCard(client, a);
          stops.push(card.stop);
          list.appendChild(card.el);
        }
      } catch (err) {
        toast(explain(err), "error");
      }
    };
    const refresh = h(
      "button",
      {
        type: "button",
        class: "secondary small",
        on: {
          click: () => {
            stops.splice(0).forEach((s) => s());
            void fill(live, "live", "Nothing running right now.");
            void fill(upcoming, "upcoming", "Nothing scheduled yet.");
          },
        },
      },
      "Refresh",
    );
    replace(panel, h("div", { class: "row" }, h("h2", null, "Live now"), refresh), live, h("h2", null, "Coming up"), upcoming);
    refresh.click();
    return () => stops.splice(0).forEach((s) => s());
  };
}
