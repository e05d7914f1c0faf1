// The sign-in screen both apps open with: log in, or create an account (which signs in at
// once: the register reply carries a token), optionally with a friend's invite code (also
// read from the page's `?invite=` link).
import { type Account, api, explain, saveSession } from "./session.ts";
import { field, h, replace } from "./dom.ts";

interface AuthReply {
  token: string;
  user_id: number;
  role: Account["role"];
}

/** Renders the sign-in form into `root`; resolves once signed in. */
export function signIn(root: HTMLElement, title: string, intro: string): Promise<Account> {
  return new Promise((resolve) => {
    const user = h("input", { name: "username", autocomplete: "username", required: true, minLength: 3, maxLength: 32 });
    const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, minLength: 8, maxLength: 128 });
    const u = field("Username", user, "3-32 letters, digits, '_', '-' or '.'");
    const p = field("Password", pass, "At least 8 characters");
    const code = h("input", { name: "invite", id: "invite", maxLength: 32, autocomplete: "off", value: new URLSearchParams(location.search).get("invite") ?? "" });
    const c = field("Invite code (new accounts, optional)", code, "From the friend who invited you");
    const status = h("p", { class: "form-error", attrs: { role: "alert" } });
    const go = async (mode: "login" | "register") => {
      status.textContent = "";
      if (!user.reportValidity() || !pass.reportValidity()) return;
      const body = { username: user.value.trim(), password: pass.value };
      const invite = code.value.trim();
      try {
        const reply = await api.post<AuthReply>(`/api/v1/auth/${mode}`, mode === "register" && invite ? { ...body, invite_code: invite } : body);
        const account: Account = { user_id: reply.user_id, username: body.username, role: reply.role };
        saveSession(reply.token, account);
        resolve(account);
      } catch (err) {
        status.textContent = explain(err);
      }
    };
    const form = h(
      "form",
      { class: "card narrow", on: { submit: (ev) => (ev.preventDefault(), void go("login")) } },
      h("h1", null, title),
      h("p", { class: "muted" }, intro),
      u.row,
      p.row,
      c.row,
      status,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", id: "login" }, "Log in"),
        h("button", { type: "button", class: "secondary", id: "register", on: { click: () => void go("register") } }, "Create account"),
      ),
    );
    replace(root, form);
    user.focus();
  });
}
