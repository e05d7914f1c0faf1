// A promotion's rules (SPEC section 13) in the apps: their JSON shape, plain words for each
// one (what the console lists and the user app explains), and the console's simple rule
// choices turned into rules and back.

export interface Audience {
  followers_only?: boolean;
  registered_before?: number | null;
  new_users_since?: number | null;
}

export type Requirement =
  | { kind: "follows_merchant" }
  | { kind: "posts"; min: number; since: number }
  | { kind: "invited"; min: number }
  | { kind: "confirmed_claims"; min: number; merchant_only?: boolean };

export interface Rules {
  audience?: Audience;
  requires?: Requirement[];
  reward?: { kind: "slot" | "coupon" };
}

/** The rules a merchant sets in the console's form. */
export interface RuleChoices {
  followersOnly: boolean;
  /** Friends who registered with the user's invite code (0: not asked). */
  invited: number;
  /** Paid adoptions from the merchant's earlier promotions (0: not asked). */
  loyal: number;
  /** Each winner gets a code from the promotion's coupon pool (else: a slot to pay for). */
  coupon: boolean;
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** Each rule in plain words, audience first (empty: anyone may take part). */
export function describeRules(rules: Rules | undefined, day: (ms: number) => string): string[] {
  const out: string[] = [];
  const a = rules?.audience ?? {};
  if (a.followers_only) out.push("followers only");
  if (typeof a.registered_before === "number") out.push(`accounts from before ${day(a.registered_before)}`);
  if (typeof a.new_users_since === "number") out.push(`new accounts since ${day(a.new_users_since)}`);
  for (const r of rules?.requires ?? []) {
    if (r.kind === "follows_merchant") out.push("must follow you");
    else if (r.kind === "posts") out.push(`${plural(r.min, "post", "posts")} since ${day(r.since)}`);
    else if (r.kind === "invited") out.push(`${plural(r.min, "friend", "friends")} invited`);
    else out.push(`${plural(r.min, "paid adoption", "paid adoptions")} ${r.merchant_only ? "from you" : "anywhere"} before`);
  }
  if (rules?.reward?.kind === "coupon") out.push("a coupon code for each winner");
  return out;
}

/**
 * `existing` rules with the console's choices applied (`null`: no rules, everyone may take
 * part). Rules the console does not offer (dates, posts) are kept as they are.
 */
export function withChoices(existing: Rules | undefined, c: RuleChoices): Rules | null {
  const old = existing?.requires ?? [];
  const requires: Requirement[] = old.filter((r) => r.kind !== "invited" && r.kind !== "confirmed_claims");
  if (c.invited > 0) requires.push({ kind: "invited", min: c.invited });
  if (c.loyal > 0) {
    const scope = old.find((r) => r.kind === "confirmed_claims");
    requires.push({ kind: "confirmed_claims", min: c.loyal, merchant_only: scope?.kind === "confirmed_claims" ? (scope.merchant_only ?? false) : true });
  }
  const audience: Audience = { ...(existing?.audience ?? {}), followers_only: c.followersOnly };
  const open = !audience.followers_only && audience.registered_before == null && audience.new_users_since == null && !requires.length && !c.coupon;
  return open ? null : { audience, requires, reward: { kind: c.coupon ? "coupon" : "slot" } };
}

/** The console's choices read back from stored rules (rules it cannot show stay as they are). */
export function choicesOf(rules: Rules | undefined): RuleChoices {
  const find = <K extends Requirement["kind"]>(kind: K) => rules?.requires?.find((r) => r.kind === kind) as Extract<Requirement, { kind: K }> | undefined;
  return {
    followersOnly: Boolean(rules?.audience?.followers_only),
    invited: find("invited")?.min ?? 0,
    loyal: find("confirmed_claims")?.min ?? 0,
    coupon: rules?.reward?.kind === "coupon",
  };
}

/** What a user is missing, in plain words (`rule` as `unmet` names it). */
export function unmetWords(u: { rule: string; need?: number; have?: number }): string {
  const count = (what: string) => (u.need === undefined ? what : `${what}: ${u.need} needed, you have ${u.have ?? 0}`);
  switch (u.rule) {
    case "followers_only":
    case "follows_merchant":
      return "follow this farm or shop";
    case "registered_before":
      return "for accounts older than this promotion's date";
    case "new_users_since":
      return "for new accounts only";
    case "posts":
      return count("posts");
    case "invited":
      return count("friends invited with your code");
    case "confirmed_claims":
      return count("paid adoptions before");
    default:
      return u.rule;
  }
}
