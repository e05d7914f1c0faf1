// The stock of a promotion over time, rebuilt from its claims for a console opened after the
// start: each claim took a slot when it was made, and an expired hold gave it back when it
// expired. (A hold given back early is only seen in the live count from then on: the claims
// listing does not say when it was given back.)
import type { Point } from "../lib/chart.ts";

export interface ClaimEvent {
  status: string;
  created_at: number;
  expires_at: number;
}

/** Stock points from `startsAt` (all `slots` free) through each claim, up to `now`. */
export function stockHistory(claims: ClaimEvent[], slots: number, startsAt: number, now: number): Point[] {
  const changes: { at: number; delta: number }[] = [];
  for (const c of claims) {
    changes.push({ at: Math.max(c.created_at, startsAt), delta: -1 });
    if (c.status === "expired" && c.expires_at <= now) changes.push({ at: c.expires_at, delta: +1 });
  }
  changes.sort((a, b) => a.at - b.at);
  const points: Point[] = [{ at: startsAt, value: slots }];
  let value = slots;
  for (const { at, delta } of changes) {
    value += delta;
    const last = points[points.length - 1]!;
    if (last.at === at) last.value = value;
    else points.push({ at, value });
  }
  return points;
}
