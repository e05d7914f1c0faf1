// My claims: every hold with its time left on the server clock, its status changing live
// (`claim.updated`: confirmed when paid, expired when the time ran out), a coupon
// promotion's code while the claim is held or confirmed, and a way to give a hold back.
import type { CorralClient } from "@corral/client";
import { confirmDialog, h, replace, toast } from "../lib/dom.ts";
import { duration, when } from "../lib/format.ts";
import { api, explain } from "../lib/session.ts";

interface ClaimRow {
  claim_id: number;
  activity_id: number;
  title: string;
  animal_name: string;
  status: string;
  expires_at: number;
  created_at: number;
  coupon_code?: string;
}

const STATUS_TEXT: Record<string, string> = {
  held: "Held — waiting for payment",
  confirmed: "Confirmed — it's yours",
  expired: "Expired — not paid in time",
  cancelled: "Given back",
  refund_due: "Refund due",
};

export function claimsTab(client: CorralClient) {
  return (panel: HTMLElement) => {
    const list = h("ol", { class: "list", id: "claims" });
    const rows = new Map<
      number,
      { row: ClaimRow; status: HTMLElement; left: HTMLElement; coupon: HTMLElement; cancel: HTMLButtonElement }
    >();

    const render = () => {
      const now = client.clock.now();
      for (const { row, status, left, coupon, cancel } of rows.values()) {
        status.textContent = STATUS_TEXT[row.status] ?? row.status;
        status.dataset.status = row.status;
        left.textContent = row.status === "held" ? `${duration(row.expires_at - now)} left to pay` : "";
        cancel.hidden = row.status !== "held";
        coupon.textContent = row.coupon_code ? `Your coupon code: ${row.coupon_code}` : "";
        coupon.hidden = !row.coupon_code;
      }
    };

    const load = async () => {
      try {
        const page = await api.get<{ claims: ClaimRow[] }>("/api/v1/me/claims?limit=50");
        replace(list);
        rows.clear();
        if (!page.claims.length) list.appendChild(h("li", { class: "muted" }, "No claims yet: claim an animal from a live promotion."));
        for (const row of page.claims) {
          const status = h("span", { class: "status", attrs: { "data-claim-status": String(row.claim_id) } });
          const left = h("span", { class: "time-left" });
          const coupon = h("div", { class: "coupon", attrs: { "data-coupon": String(row.claim_id) } });
          const cancel = h("button", { type: "button", class: "danger small" }, "Give back");
          cancel.addEventListener("click", async () => {
            const sure = await confirmDialog(`Give back ${row.animal_name}?`, "Someone else can then claim it. This cannot be undone.", "Give it back");
            if (!sure) return;
            try {
              await client.cancelClaim(row.claim_id);
              row.status = "cancelled";
              render();
            } catch (err) {
              toast(explain(err), "error");
            }
          });
          rows.set(row.claim_id, { row, status, left, coupon, cancel });
          list.appendChild(
            h(
              "li",
              { class: "card claim-row", attrs: { "data-claim": String(row.claim_id) } },
              h("div", null, h("b", null, row.animal_name), " from ", h("span", null, row.title)),
              h("div", { class: "muted" }, `claimed ${when(row.created_at)}`),
              h("div", { class: "row" }, status, left, cancel),
              coupon,
            ),
          );
        }
        render();
      } catch (err) {
        toast(explain(err), "error");
      }
    };

    const off = client.on("claim.updated", (push) => {
      const entry = rows.get(push.claim_id);
      if (entry) {
        entry.row.status = push.status;
        if (push.coupon_code) entry.row.coupon_code = push.coupon_code;
        else delete entry.row.coupon_code;
        render();
      } else void load();
    });
    const tick = setInterval(render, 1000);
    replace(panel, h("h2", null, "My claims"), list);
    void load();
    return () => {
      off();
      clearInterval(tick);
    };
  };
}
