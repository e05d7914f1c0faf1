// A tiny element builder. Every string child becomes a Text node and properties are set one
// by one, so user-supplied data can never be parsed as HTML (there is no innerHTML here).

export type Child = Node | string | number | null | undefined | false;

type Handler = (ev: Event) => void;

export interface Props {
  class?: string;
  /** Attributes set verbatim (aria-*, data-*, role, for...). */
  attrs?: Record<string, string>;
  /** Event listeners, by event name ("click", "submit"...). */
  on?: Record<string, Handler>;
  [prop: string]: unknown;
}

const FORBIDDEN = new Set(["innerHTML", "outerHTML", "srcdoc"]);

/** Creates `<tag>` with `props` and `children` (strings as text). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined) continue;
    if (FORBIDDEN.has(key)) throw new Error(`h(): ${key} is not allowed`);
    if (key === "class") el.className = String(value);
    else if (key === "attrs") {
      for (const [name, v] of Object.entries(value as Record<string, string>)) el.setAttribute(name, v);
    } else if (key === "on") {
      for (const [name, fn] of Object.entries(value as Record<string, Handler>)) el.addEventListener(name, fn);
    } else (el as unknown as Record<string, unknown>)[key] = value;
  }
  append(el, ...children);
  return el;
}

/** Appends children, strings as text. */
export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces every child of `parent`. */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) parent.removeChild(parent.firstChild);
  append(parent, ...children);
}

/** The element with this id (throws when the page lacks it). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
}

/** A labelled form field: `<label>` wrapping the text, the control and an error slot. */
export function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  hint?: string,
): { row: HTMLElement; error: HTMLElement } {
  const error = h("span", { class: "field-error", attrs: { role: "alert" } });
  const row = h("label", { class: "field" }, h("span", { class: "field-label" }, label), control, hint ? h("span", { class: "hint" }, hint) : null, error);
  return { row, error };
}

/** Asks a yes/no question in a modal dialog; resolves true on confirm. */
export function confirmDialog(question: string, detail: string, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", attrs: { "aria-label": question } });
    const done = (ok: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(ok);
    };
    append(
      dialog,
      h("h3", null, question),
      h("p", null, detail),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "secondary", on: { click: () => done(false) } }, "Keep it"),
        h("button", { type: "button", class: "danger", on: { click: () => done(true) } }, confirmLabel),
      ),
    );
    dialog.addEventListener("cancel", () => done(false));
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

/** Shows a short notice at the top of the screen. */
export function toast(text: string, kind: "info" | "error" = "info"): void {
  const el = h("div", { class: `toast ${kind}`, attrs: { role: kind === "error" ? "alert" : "status" } }, text);
  document.body.appendChild(el);
  setTimeout(() => el.remove(), 5000);
}
