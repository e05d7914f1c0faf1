// For admins: merchant applications waiting for approval, and the audit log of every
// merchant and admin action.
import { h, replace, toast } from "../lib/dom.ts";
import { when } from "../lib/format.ts";
import { api, explain, nameTag } from "../lib/session.ts";

interface Merchant {
  merchant_id: number;
  name: string;
  created_at: number;
}

interface AuditEntry {
  id: number;
  actor_id: number;
  action: string;
  subject: string;
  detail: unknown;
  at: number;
}

export function approvalsTab() {
  return (panel: HTMLElement) => {
    const list = h("ol", { class: "list", id: "pending" });
    const refresh = async () => {
      try {
        const page = await api.get<{ merchants: Merchant[] }>("/api/v1/merchants?status=pending&limit=100");
        replace(list);
        if (!page.merchants.length) list.appendChild(h("li", { class: "muted" }, "No applications waiting."));
        for (const m of page.merchants) {
          const approve = h("button", { type: "button", class: "small" }, "Approve");
          approve.addEventListener("click", async () => {
            approve.disabled = true;
            try {
              await api.post(`/api/v1/admin/merchants/${m.merchant_id}/approve`, {});
              toast("Approved: they sign in again to get merchant access.");
              await refresh();
            } catch (err) {
              toast(explain(err), "error");
              approve.disabled = false;
            }
          });
          list.appendChild(h("li", { class: "card row" }, h("span", null, h("b", null, m.name), " — ", nameTag(m.merchant_id), ` · applied ${when(m.created_at)}`), approve));
        }
      } catch (err) {
        toast(explain(err), "error");
      }
    };
    replace(panel, h("h2", null, "Merchant applications"), list);
    void refresh();
  };
}

export function auditTab() {
  return (panel: HTMLElement) => {
    const subject = h("input", { name: "subject", placeholder: "e.g. activity:7", attrs: { "aria-label": "Only this subject" } });
    const body = h("tbody");
    const load = async () => {
      try {
        const q = subject.value.trim() ? `&subject=${encodeURIComponent(subject.value.trim())}` : "";
        const page = await api.get<{ entries: AuditEntry[] }>(`/api/v1/admin/audit?limit=200${q}`);
        replace(body);
        for (const e of page.entries) {
          body.appendChild(
            h("tr", null, h("td", null, when(e.at)), h("td", null, nameTag(e.actor_id)), h("td", null, e.action), h("td", null, e.subject), h("td", { class: "detail" }, JSON.stringify(e.detail))),
          );
        }
      } catch (err) {
        toast(explain(err), "error");
      }
    };
    replace(
      panel,
      h("h2", null, "Audit log"),
      h("form", { class: "send-row", on: { submit: (ev) => (ev.preventDefault(), void load()) } }, subject, h("button", { type: "submit", class: "small" }, "Filter")),
      h("div", { class: "table-wrap" }, h("table", { class: "audit" }, h("thead", null, h("tr", null, ...["When", "Who", "Action", "Subject", "Detail"].map((t) => h("th", null, t)))), body)),
    );
    void load();
  };
}
