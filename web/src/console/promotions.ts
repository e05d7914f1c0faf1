// The merchant's promotions: list, create and edit (each field checked, errors next to it;
// who may take part in plain words: followers only, invited friends, earlier adoptions),
// cancel (after a confirmation), broadcast a message to everyone watching, add coupon codes to
// a coupon promotion before it starts, and open the live view of one.
import type { ActivityPage, ListedActivity } from "../lib/activities.ts";
import { confirmDialog, field, h, replace, toast } from "../lib/dom.ts";
import { inlineForm } from "../lib/forms.ts";
import { duration, fromLocalInput, toLocalInput, when } from "../lib/format.ts";
import { choicesOf, describeRules, withChoices } from "../lib/rules.ts";
import { api, explain } from "../lib/session.ts";
import { type Animal, loadAnimals } from "./animals.ts";
import { type FieldName, PROMOTION_FIELDS, type PromotionDraft, checkPromotion, fieldOf, parseCodes } from "./checks.ts";

function promotionForm(animals: Animal[], existing: ListedActivity | null, done: () => void): HTMLFormElement {
  const now = Date.now();
  const title = h("input", { name: "title", id: "promo-title", maxLength: 200, value: existing?.title ?? "" });
  const starts = h("input", { name: "starts", id: "promo-starts", type: "datetime-local", step: "1", value: toLocalInput(existing?.starts_at ?? now + 3_600_000) });
  const ends = h("input", { name: "ends", id: "promo-ends", type: "datetime-local", step: "1", value: toLocalInput(existing?.ends_at ?? now + 7_200_000) });
  const limit = h("input", { name: "limit", id: "promo-limit", type: "number", min: "1", step: "1", value: String(existing?.per_user_limit ?? 1) });
  const hold = h("input", { name: "hold", id: "promo-hold", type: "number", min: "0.1", step: "any", value: String((existing?.hold_seconds ?? 900) / 60) });
  const picks = animals.map((a) => {
    const item = existing?.items.find((i) => i.animal_id === a.animal_id);
    const on = h("input", { type: "checkbox", checked: Boolean(item), attrs: { "data-animal": String(a.animal_id) } });
    const slots = h("input", { type: "number", min: "1", max: String(a.slots), step: "1", value: String(item?.slots ?? a.slots), class: "slots", attrs: { "aria-label": `Slots of ${a.name}` } });
    return { a, on, slots };
  });
  const itemsError = h("span", { class: "field-error", attrs: { role: "alert" } });
  const chosen = choicesOf(existing?.rules);
  const followersOnly = h("input", { type: "checkbox", id: "rule-followers", checked: chosen.followersOnly });
  const invited = h("input", { name: "invited", id: "rule-invited", type: "number", min: "0", max: "1000", step: "1", value: String(chosen.invited) });
  const loyal = h("input", { name: "loyal", id: "rule-loyal", type: "number", min: "0", max: "1000", step: "1", value: String(chosen.loyal) });
  const coupon = h("input", { type: "checkbox", id: "rule-coupon", checked: chosen.coupon });
  const rulesError = h("span", { class: "field-error", attrs: { role: "alert" } });
  const rulesBox = h(
    "fieldset",
    { class: "field", id: "promo-rules" },
    h("legend", { class: "field-label" }, "Who can take part"),
    h("label", { class: "check" }, followersOnly, " Only people who follow me"),
    h("div", { class: "two" }, field("Friends they invited (at least)", invited, "0: not needed").row, field("Paid adoptions from my earlier promotions (at least)", loyal, "0: not needed").row),
    h("label", { class: "check" }, coupon, " Winners get a coupon code (add the codes after saving; one winner per code)"),
    h("span", { class: "hint" }, "Fixed when the promotion starts. People who miss a rule see what is missing and can fix it during the countdown."),
    rulesError,
  );
  const f = {
    title: field("Title", title),
    starts: field("Claiming opens", starts, "Your local time"),
    ends: field("Claiming closes", ends),
    limit: field("Animals per person", limit),
    hold: field("Minutes to pay after claiming", hold, "Unpaid holds go back on offer after this"),
  };
  const errors: Record<FieldName, HTMLElement> = { ...Object.fromEntries(Object.entries(f).map(([k, v]) => [k, v.error])), items: itemsError } as Record<FieldName, HTMLElement>;
  const status = h("p", { class: "form-error", attrs: { role: "alert" } });
  const itemsBox = h(
    "fieldset",
    { class: "field" },
    h("legend", { class: "field-label" }, "Animals offered"),
    picks.length
      ? h("ul", { class: "picks" }, ...picks.map((p) => h("li", null, h("label", { class: "check" }, p.on, " ", h("span", null, p.a.name), ` (${p.a.species})`), p.slots, " slots")))
      : h("p", { class: "muted" }, "Add animals first (Animals tab)."),
    itemsError,
  );
  const form = h(
    "form",
    {
      class: "card",
      id: "promo-form",
      on: {
        submit: async (ev) => {
          ev.preventDefault();
          const draft: PromotionDraft = {
            title: title.value,
            starts_at: fromLocalInput(starts.value),
            ends_at: fromLocalInput(ends.value),
            items: picks.filter((p) => p.on.checked).map((p) => ({ animal_id: p.a.animal_id, slots: Number(p.slots.value) })),
            per_user_limit: Number(limit.value),
            hold_minutes: Number(hold.value),
          };
          const problems = checkPromotion(draft, Date.now());
          for (const [k, el] of Object.entries(errors)) el.textContent = problems[k as FieldName] ?? "";
          status.textContent = "";
          const counts = [Number(invited.value), Number(loyal.value)];
          rulesError.textContent = counts.every((n) => Number.isInteger(n) && n >= 0 && n <= 1000) ? "" : "Use whole numbers from 0 to 1000.";
          if (Object.keys(problems).length || rulesError.textContent) return;
          const body = {
            title: draft.title.trim(),
            starts_at: draft.starts_at,
            ends_at: draft.ends_at,
            items: draft.items,
            per_user_limit: draft.per_user_limit,
            hold_seconds: Math.round(draft.hold_minutes * 60),
            rules: withChoices(existing?.rules, { followersOnly: followersOnly.checked, invited: counts[0]!, loyal: counts[1]!, coupon: coupon.checked }),
          };
          try {
            if (existing) await api.put(`/api/v1/activities/${existing.activity_id}`, body);
            else await api.post("/api/v1/activities", body);
            toast(existing ? "Promotion saved." : "Promotion created.");
            done();
          } catch (err) {
            const message = explain(err);
            const at = fieldOf(message, PROMOTION_FIELDS);
            if (message.startsWith("rules")) rulesError.textContent = message;
            else if (at) errors[at].textContent = message;
            else status.textContent = message;
          }
        },
      },
    },
    h("h3", null, existing ? "Edit promotion" : "New promotion"),
    f.title.row,
    h("div", { class: "two" }, f.starts.row, f.ends.row),
    itemsBox,
    h("div", { class: "two" }, f.limit.row, f.hold.row),
    rulesBox,
    status,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "save-promo" }, existing ? "Save changes" : "Create promotion"), h("button", { type: "button", class: "secondary", on: { click: done } }, "Close")),
  );
  return form;
}

function couponBox(a: ListedActivity): HTMLFormElement {
  const codes = h("textarea", { name: "codes", rows: 3, placeholder: "One code per line", attrs: { "aria-label": "Coupon codes", "data-coupons": String(a.activity_id) } });
  return inlineForm("Add codes", [codes], async () => {
    const list = parseCodes(codes.value);
    if (!list.length) return "Paste the codes first, one per line.";
    const added = await api.post<{ added: number; duplicates: string[]; pool: { loaded: number; given: number } }>(
      `/api/v1/activities/${a.activity_id}/coupons`,
      { codes: list },
    );
    codes.value = "";
    const skipped = added.duplicates.length ? ` (${added.duplicates.length} already there, skipped)` : "";
    toast(`Added ${added.added} codes${skipped}. ${added.pool.loaded} codes ready: up to ${added.pool.loaded} winners.`);
    return undefined;
  });
}

function broadcastBox(a: ListedActivity): HTMLFormElement {
  const text = h("input", { name: "broadcast", maxLength: 1000, placeholder: "e.g. Last 3 lambs! 10 minutes left", attrs: { "aria-label": "Broadcast message" } });
  return inlineForm("Broadcast", [text], async () => {
    if (!text.value.trim()) return "Write the message first.";
    const sent = await api.post<{ delivered: number }>(`/api/v1/activities/${a.activity_id}/broadcast`, { text: text.value });
    text.value = "";
    toast(`Sent to ${sent.delivered} watching.`);
    return undefined;
  });
}

export function promotionsTab(me: number, openLive: (a: ListedActivity) => void) {
  return (panel: HTMLElement) => {
    const list = h("ol", { class: "list", id: "my-promotions" });
    const formBox = h("div");
    const refresh = async () => {
      try {
        const page = await api.get<ActivityPage>(`/api/v1/activities?merchant=${me}&limit=50`);
        replace(list);
        if (!page.activities.length) list.appendChild(h("li", { class: "muted" }, "No promotions yet."));
        for (const a of page.activities) {
          const changeable = a.state === "scheduled";
          const running = a.state === "scheduled" || a.state === "live";
          const cancel = h("button", { type: "button", class: "danger small" }, "Cancel promotion");
          cancel.addEventListener("click", async () => {
            const sure = await confirmDialog(
              `Cancel "${a.title}"?`,
              "Claiming stops at once and people holding animals from it are told. This cannot be undone.",
              "Cancel promotion",
            );
            if (!sure) return;
            try {
              await api.post(`/api/v1/activities/${a.activity_id}/cancel`, {});
              toast("Promotion cancelled.");
              await refresh();
            } catch (err) {
              toast(explain(err), "error");
            }
          });
          const edit = async () => {
            const animals = await loadAnimals();
            replace(formBox, promotionForm(animals, a, () => (replace(formBox), void refresh())));
          };
          list.appendChild(
            h(
              "li",
              { class: "card", attrs: { "data-activity": String(a.activity_id) } },
              h("div", { class: "promo-head" }, h("h3", null, a.title), h("span", { class: `badge state-${a.state}` }, a.state)),
              h("p", { class: "muted" }, `${when(a.starts_at)} → ${when(a.ends_at)} · ${a.slots} slots · hold ${duration(a.hold_seconds * 1000)}`),
              h("p", { class: "muted", attrs: { "data-rules": String(a.activity_id) } }, `Who: ${describeRules(a.rules, when).join(" · ") || "everyone"}`),
              h(
                "div",
                { class: "actions" },
                h("button", { type: "button", class: "small", attrs: { "data-live": String(a.activity_id) }, on: { click: () => openLive(a) } }, "Live view"),
                changeable ? h("button", { type: "button", class: "secondary small", on: { click: () => void edit() } }, "Edit") : null,
                running ? cancel : null,
              ),
              running ? broadcastBox(a) : null,
              changeable && a.rules?.reward?.kind === "coupon" ? couponBox(a) : null,
            ),
          );
        }
      } catch (err) {
        toast(explain(err), "error");
      }
    };
    const create = async () => {
      try {
        const animals = await loadAnimals();
        replace(formBox, promotionForm(animals, null, () => (replace(formBox), void refresh())));
      } catch (err) {
        toast(explain(err), "error");
      }
    };
    replace(
      panel,
      h("div", { class: "row" }, h("h2", null, "Your promotions"), h("button", { type: "button", id: "new-promo", on: { click: () => void create() } }, "New promotion")),
      formBox,
      list,
    );
    void refresh();
  };
}
