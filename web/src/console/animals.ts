// The merchant's animals: list, add, edit, and retire (with a confirmation). Field errors are
// shown next to the field they are about.
import { confirmDialog, field, h, replace, toast } from "../lib/dom.ts";
import { price } from "../lib/format.ts";
import { api, explain } from "../lib/session.ts";
import { ANIMAL_FIELDS, type AnimalErrors, checkAnimal, fieldOf } from "./checks.ts";

export interface Animal {
  animal_id: number;
  name: string;
  species: string;
  description: string;
  price_cents: number;
  slots: number;
  retired: boolean;
}

/** The merchant's animals still offered (retired ones are left out). */
export async function loadAnimals(): Promise<Animal[]> {
  const page = await api.get<{ animals: Animal[] }>("/api/v1/animals");
  return page.animals;
}

export function animalsTab() {
  return (panel: HTMLElement) => {
    const list = h("ol", { class: "list", id: "animals" });
    const formBox = h("div");

    const showForm = (animal: Animal | null) => {
      const name = h("input", { name: "name", id: "animal-name", maxLength: 100, value: animal?.name ?? "" });
      const species = h("input", { name: "species", id: "animal-species", maxLength: 100, value: animal?.species ?? "" });
      const cost = h("input", { name: "price", id: "animal-price", inputMode: "decimal", value: animal ? price(animal.price_cents) : "" });
      const slots = h("input", { name: "slots", id: "animal-slots", type: "number", min: "1", step: "1", value: String(animal?.slots ?? 1) });
      const description = h("textarea", { name: "description", rows: 2, maxLength: 4000, value: animal?.description ?? "" });
      const f = {
        name: field("Name", name),
        species: field("Species", species, "For example: sheep, goat, alpaca"),
        price: field("Price", cost, "In your currency, e.g. 12.50"),
        slots: field("People who can share it", slots, "Usually 1"),
        description: field("Description (optional)", description),
      };
      const status = h("p", { class: "form-error", attrs: { role: "alert" } });
      const form = h(
        "form",
        {
          class: "card",
          id: "animal-form",
          on: {
            submit: async (ev) => {
              ev.preventDefault();
              const values = { name: name.value, species: species.value, price: cost.value, slots: slots.value, description: description.value };
              const errors = checkAnimal(values);
              for (const [k, v] of Object.entries(f)) v.error.textContent = errors[k as keyof AnimalErrors] ?? "";
              status.textContent = "";
              if (Object.keys(errors).length) return;
              const body = {
                name: values.name.trim(),
                species: values.species.trim(),
                description: values.description,
                price_cents: Math.round(Number(values.price) * 100),
                slots: Number(values.slots),
              };
              try {
                if (animal) await api.put(`/api/v1/animals/${animal.animal_id}`, body);
                else await api.post("/api/v1/animals", body);
                toast(animal ? "Animal saved." : "Animal added.");
                replace(formBox);
                await refresh();
              } catch (err) {
                const message = explain(err);
                const at = fieldOf(message, ANIMAL_FIELDS);
                if (at) f[at].error.textContent = message;
                else status.textContent = message;
              }
            },
          },
        },
        h("h3", null, animal ? `Edit ${animal.name}` : "Add an animal"),
        ...Object.values(f).map((x) => x.row),
        status,
        h(
          "div",
          { class: "actions" },
          h("button", { type: "submit", id: "save-animal" }, animal ? "Save changes" : "Add animal"),
          h("button", { type: "button", class: "secondary", on: { click: () => replace(formBox) } }, "Close"),
        ),
      );
      replace(formBox, form);
      name.focus();
    };

    const refresh = async () => {
      try {
        const animals = await loadAnimals();
        replace(list);
        if (!animals.length) list.appendChild(h("li", { class: "muted" }, "No animals yet. Add your first one."));
        for (const a of animals) {
          const retire = h("button", { type: "button", class: "danger small" }, "Retire");
          retire.addEventListener("click", async () => {
            const sure = await confirmDialog(`Retire ${a.name}?`, "It will no longer be offered in new promotions. This cannot be undone.", "Retire");
            if (!sure) return;
            try {
              await api.delete(`/api/v1/animals/${a.animal_id}`);
              await refresh();
            } catch (err) {
              toast(explain(err), "error");
            }
          });
          list.appendChild(
            h(
              "li",
              { class: "card row", attrs: { "data-animal": String(a.animal_id) } },
              h("span", null, h("b", { class: "animal-name" }, a.name), ` ${a.species} · ${price(a.price_cents)} · ${a.slots} slot${a.slots === 1 ? "" : "s"}`),
              a.retired
                ? h("span", { class: "badge" }, "retired")
                : h("span", { class: "actions" }, h("button", { type: "button", class: "secondary small", on: { click: () => showForm(a) } }, "Edit"), retire),
            ),
          );
        }
      } catch (err) {
        toast(explain(err), "error");
      }
    };

    replace(
      panel,
      h("div", { class: "row" }, h("h2", null, "Your animals"), h("button", { type: "button", id: "new-animal", on: { click: () => showForm(null) } }, "Add an animal")),
      formBox,
      list,
    );
    void refresh();
  };
}
