// The console's form checks, mirroring the server's rules but worded for a merchant, the
// mapping of a server message to the field it is about (so the error shows beside it), and
// the reading of pasted coupon codes.

export type AnimalErrors = Partial<Record<"name" | "species" | "price" | "slots" | "description", string>>;

/** Client-side checks, mirroring the server's rules, in words a merchant understands. */
export function checkAnimal(v: { name: string; species: string; price: string; slots: string; description: string }): AnimalErrors {
  const e: AnimalErrors = {};
  if (!v.name.trim()) e.name = "Give the animal a name.";
  else if (v.name.trim().length > 100) e.name = "Keep the name under 100 characters.";
  if (!v.species.trim()) e.species = "Say what kind of animal it is (e.g. sheep).";
  else if (v.species.trim().length > 64) e.species = "Keep the species under 64 characters.";
  const p = Number(v.price);
  if (v.price.trim() === "" || !Number.isFinite(p) || p < 0) e.price = "Enter a price such as 12.50 (0 for free).";
  const s = Number(v.slots);
  if (!Number.isInteger(s) || s < 1) e.slots = "At least 1 person must be able to claim it.";
  else if (s > 1_000_000) e.slots = "At most 1,000,000.";
  if (v.description.length > 4000) e.description = "Keep the description under 4000 characters.";
  return e;
}

export type FieldName = "title" | "starts" | "ends" | "items" | "limit" | "hold";
export type FormErrors = Partial<Record<FieldName, string>>;

export interface PromotionDraft {
  title: string;
  starts_at: number;
  ends_at: number;
  items: { animal_id: number; slots: number }[];
  per_user_limit: number;
  hold_minutes: number;
}

/** Client-side checks mirroring the server's, worded for a merchant. */
export function checkPromotion(d: PromotionDraft, now: number): FormErrors {
  const e: FormErrors = {};
  if (!d.title.trim()) e.title = "Give the promotion a title people will recognise.";
  else if (d.title.trim().length > 200) e.title = "Keep the title under 200 characters.";
  if (!Number.isFinite(d.starts_at)) e.starts = "Pick when claiming opens.";
  else if (d.starts_at <= now) e.starts = "The start must be in the future.";
  if (!Number.isFinite(d.ends_at)) e.ends = "Pick when claiming closes.";
  else if (Number.isFinite(d.starts_at) && d.ends_at <= d.starts_at) e.ends = "The end must be after the start.";
  if (!d.items.length) e.items = "Tick at least one animal to offer.";
  else if (d.items.some((i) => !Number.isInteger(i.slots) || i.slots < 1)) e.items = "Each animal needs at least 1 slot.";
  if (!Number.isInteger(d.per_user_limit) || d.per_user_limit < 1) e.limit = "Each person may claim at least 1.";
  if (!Number.isFinite(d.hold_minutes) || d.hold_minutes * 60 < 1 || d.hold_minutes * 60 > 86_400) e.hold = "Between a few seconds and 24 hours (1440 minutes).";
  return e;
}

/** Which field a server message is about: the server names the field first
 * ("ends_at must be after starts_at"); `prefixes` maps those names to the form's fields. */
export function fieldOf<F extends string>(message: string, prefixes: readonly (readonly [string, F])[]): F | null {
  const m = message.toLowerCase();
  return prefixes.find(([p]) => m.startsWith(p))?.[1] ?? null;
}

export const PROMOTION_FIELDS = [
  ["title", "title"],
  ["starts_at", "starts"],
  ["ends_at", "ends"],
  ["per_user_limit", "limit"],
  ["hold_seconds", "hold"],
  ["item", "items"],
  ["animal", "items"],
] as const satisfies readonly (readonly [string, FieldName])[];

export const ANIMAL_FIELDS = [
  ["name", "name"],
  ["species", "species"],
  ["price_cents", "price"],
  ["slots", "slots"],
  ["description", "description"],
] as const satisfies readonly (readonly [string, keyof AnimalErrors])[];

/** Coupon codes pasted one per line (or separated by commas), trimmed, blanks dropped. */
export function parseCodes(text: string): string[] {
  return text
    .split(/[\n,]/)
    .map((c) => c.trim())
    .filter((c) => c.length > 0);
}
