// A one-line form: its controls, a submit button and an error slot. The work is `run`; a
// failure it throws (or a "Nothing to send" it returns) is shown in the slot, in words.
import { type Child, h } from "./dom.ts";
import { explain } from "./session.ts";

export function inlineForm(button: string, controls: Child[], run: () => Promise<string | void>, buttonClass = "small"): HTMLFormElement {
  const error = h("span", { class: "field-error", attrs: { role: "alert" } });
  const submit = h("button", { type: "submit", class: buttonClass }, button);
  return h(
    "form",
    {
      class: "send-row",
      on: {
        submit: async (ev) => {
          ev.preventDefault();
          error.textContent = "";
          submit.disabled = true;
          try {
            const problem = await run();
            if (problem) error.textContent = problem;
          } catch (err) {
            error.textContent = explain(err);
          } finally {
            submit.disabled = false;
          }
        },
      },
    },
    ...controls,
    submit,
    error,
  );
}
