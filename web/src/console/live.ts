// The live view of one promotion while it runs: the countdown or time left, stock over time
// as a chart (every `activity.stock` push is a point), claims as they arrive (newest first),
// and the summary held / confirmed / expired / refund_due, and the funnel (viewers down to
// confirmed, and how many each rule stopped). A stock change fetches the claims at once; a
// slow refresh also catches status changes no push announces (payments, expiry) and keeps
// the funnel live.
import type { CorralClient } from "@corral/client";
import type { ListedActivity } from "../lib/activities.ts";
import { type Point, stockChart } from "../lib/chart.ts";
import { h, replace, toast } from "../lib/dom.ts";
import { clockTime, duration } from "../lib/format.ts";
import { api, explain, nameTag } from "../lib/session.ts";
import { stockHistory } from "./stock.ts";

interface ClaimsView {
  claims: { claim_id: number; user_id: number; item: number; status: string; created_at: number; expires_at: number }[];
  summary: { slots: number; held: number; confirmed: number; expired: number; cancelled: number; refund_due: number };
}

interface Funnel {
  viewers: number;
  subscribers: number;
  eligible: number;
  claimed: number;
  confirmed: number;
  expired: number;
  stopped_by: Record<string, number>;
}

/** A rule's name in plain words, for "stopped by". */
const RULE_WORDS: Record<string, string> = {
  followers_only: "not following you",
  registered_before: "account too new",
  new_users_since: "account too old",
  follows_merchant: "not following you",
  posts: "too few posts",
  invited: "no friend invited yet",
  confirmed_claims: "no earlier adoption",
};

/** How often the claim list is re-read when no push says something changed. */
const REFRESH_MS = 3000;

export function liveView(client: CorralClient, a: ListedActivity, panel: HTMLElement): () => void {
  const points: Point[] = [];
  const clock = h("strong", { class: "countdown", id: "live-clock" });
  const chartBox = h("div", { class: "chart-box", id: "stock-chart" });
  const stockNow = h("span", { class: "stock", id: "stock-now" });
  const summary = h("dl", { class: "summary", id: "summary" });
  const claims = h("ol", { class: "list claims-live", id: "live-claims" });
  const funnel = h("dl", { class: "summary", id: "funnel" });
  const itemNames = new Map(a.items.map((i) => [i.item_id, i.animal_name]));
  const rows = new Map<number, HTMLElement>();
  let rebuilt = false;

  const draw = () => {
    const now = client.clock.now();
    const from = a.starts_at;
    const to = Math.max(Math.min(now, a.ends_at), from + 60_000);
    replace(chartBox, stockChart(points, from, to, a.slots, `Animals left over time for ${a.title}`));
    clock.textContent = now < a.starts_at ? `Starts in ${duration(a.starts_at - now)}` : now < a.ends_at ? `Running — ends in ${duration(a.ends_at - now)}` : "Ended";
  };
  const addPoint = (value: number) => {
    const last = points[points.length - 1];
    if (last && last.value === value) return;
    points.push({ at: Math.max(client.clock.now(), a.starts_at), value });
    stockNow.textContent = `${value} of ${a.slots} left`;
    draw();
  };

  const loadClaims = async () => {
    try {
      const view = await api.get<ClaimsView>(`/api/v1/activities/${a.activity_id}/claims`);
      if (!rebuilt) {
        // Opened after claims began: draw what happened before, then follow the live count.
        rebuilt = true;
        const now = client.clock.now();
        if (now >= a.starts_at) {
          const live = points.splice(0);
          points.push(...stockHistory(view.claims, a.slots, a.starts_at, now));
          for (const p of live) if (p.value !== points[points.length - 1]!.value) points.push(p);
          draw();
        }
      }
      const s = view.summary;
      replace(
        summary,
        ...(["held", "confirmed", "expired", "refund_due"] as const).flatMap((k) => [h("dt", null, k.replace("_", " ")), h("dd", { attrs: { "data-summary": k } }, String(s[k]))]),
      );
      const fresh = [...view.claims].sort((x, y) => x.claim_id - y.claim_id);
      for (const c of fresh) {
        const status = h("span", { class: "status", attrs: { "data-status": c.status } }, c.status);
        const existing = rows.get(c.claim_id);
        if (existing) {
          replace(existing.querySelector(".status-slot")!, status);
          continue;
        }
        const row = h(
          "li",
          { class: "row claim-live", attrs: { "data-claim": String(c.claim_id) } },
          h("time", null, clockTime(c.created_at)),
          nameTag(c.user_id),
          h("span", null, itemNames.get(c.item) ?? `item ${c.item}`),
          h("span", { class: "status-slot" }, status),
        );
        rows.set(c.claim_id, row);
        claims.insertBefore(row, claims.firstChild);
      }
      if (!rows.size) replace(claims, h("li", { class: "muted" }, "No claims yet."));
      else claims.querySelector("li.muted")?.remove();
    } catch (err) {
      toast(explain(err), "error");
    }
  };

  const loadFunnel = async () => {
    try {
      const f = await api.get<Funnel>(`/api/v1/activities/${a.activity_id}/funnel`);
      const stages = [
        ["viewers", "Opened it", f.viewers],
        ["subscribers", "Watched the countdown", f.subscribers],
        ["eligible", "Could take part", f.eligible],
        ["claimed", "Claimed", f.claimed],
        ["confirmed", "Paid", f.confirmed],
        ["expired", "Let the hold lapse", f.expired],
      ] as const;
      const stopped = Object.entries(f.stopped_by).map(([rule, n]) => [`stopped-${rule}`, `Stopped: ${RULE_WORDS[rule] ?? rule}`, n] as const);
      replace(funnel, ...[...stages, ...stopped].flatMap(([key, label, n]) => [h("dt", null, label), h("dd", { attrs: { "data-funnel": key } }, String(n))]));
    } catch (err) {
      toast(explain(err), "error");
    }
  };

  replace(
    panel,
    h("div", { class: "row" }, h("h2", null, "Live: ", h("span", null, a.title)), clock),
    h("div", { class: "grid" }, h("div", { class: "card" }, h("h3", null, "Stock ", stockNow), chartBox), h("div", { class: "card" }, h("h3", null, "Summary"), summary)),
    h("div", { class: "card" }, h("h3", null, "Funnel"), funnel),
    h("div", { class: "card" }, h("h3", null, "Claims as they arrive"), claims),
  );
  let stopped = false;
  const off = client.on("activity.stock", (push) => {
    if (push.activity !== a.activity_id) return;
    addPoint(push.left);
    void loadClaims();
  });
  const watchP = client.watchActivity(a.activity_id, {
    onChange: (w) => {
      if (typeof w.stockLeft === "number") addPoint(w.stockLeft);
      void loadClaims();
    },
  });
  watchP.then((w) => (typeof w.stockLeft === "number" ? addPoint(w.stockLeft) : draw())).catch((err) => toast(explain(err), "error"));
  const tick = setInterval(draw, 1000);
  const poll = setInterval(() => (void loadClaims(), void loadFunnel()), REFRESH_MS);
  void loadClaims();
  void loadFunnel();
  draw();
  return () => {
    if (stopped) return;
    stopped = true;
    off();
    clearInterval(tick);
    clearInterval(poll);
    void watchP.then((w) => w.unsubscribe()).catch(() => undefined);
  };
}
