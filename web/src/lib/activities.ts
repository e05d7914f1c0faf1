// The shapes of `GET /api/v1/activities` (the promotion listing both apps read).
import type { Rules } from "./rules.ts";

export interface ListedItem {
  item_id: number;
  animal_id: number;
  slots: number;
  animal_name: string;
  species: string;
  price_cents: number;
}

export interface ListedActivity {
  activity_id: number;
  merchant_id: number;
  merchant_name: string;
  title: string;
  state: "scheduled" | "live" | "ended" | "cancelled";
  starts_at: number;
  ends_at: number;
  per_user_limit: number;
  hold_seconds: number;
  slots: number;
  items: ListedItem[];
  /** Who may claim, what they must have done, what they get. */
  rules: Rules;
}

export interface ActivityPage {
  activities: ListedActivity[];
  next_before: number | null;
}
