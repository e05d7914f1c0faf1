// A step chart of a count over time, drawn as inline SVG (no library, no HTML strings).

const NS = "http://www.w3.org/2000/svg";

export interface Point {
  at: number;
  value: number;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** The SVG path of `points` as steps (a count holds until it changes), scaled into w×h. */
export function stepPath(points: Point[], from: number, to: number, max: number, w: number, h: number): string {
  if (!points.length) return "";
  const span = Math.max(1, to - from);
  const x = (t: number) => ((Math.min(Math.max(t, from), to) - from) / span) * w;
  const y = (v: number) => h - (Math.max(0, v) / Math.max(1, max)) * h;
  let d = `M${x(points[0]!.at).toFixed(1)},${y(points[0]!.value).toFixed(1)}`;
  for (let i = 1; i < points.length; i++) {
    d += ` H${x(points[i]!.at).toFixed(1)} V${y(points[i]!.value).toFixed(1)}`;
  }
  d += ` H${x(to).toFixed(1)}`;
  return d;
}

/** Draws `points` (from `from` to `to`, 0..`max`) into a fresh `<svg>` with axes labels. */
export function stockChart(points: Point[], from: number, to: number, max: number, label: string): SVGSVGElement {
  const W = 600;
  const H = 200;
  const root = svg("svg", { viewBox: `-40 -10 ${W + 50} ${H + 30}`, role: "img", class: "chart", "aria-label": label, preserveAspectRatio: "none" });
  root.appendChild(svg("rect", { x: 0, y: 0, width: W, height: H, class: "chart-bg" }));
  for (const v of [0, max]) {
    const y = H - (v / Math.max(1, max)) * H;
    root.appendChild(svg("line", { x1: 0, x2: W, y1: y, y2: y, class: "chart-grid" }));
    const t = svg("text", { x: -6, y: y + 4, class: "chart-label", "text-anchor": "end" });
    t.textContent = String(v);
    root.appendChild(t);
  }
  root.appendChild(svg("path", { d: stepPath(points, from, to, max, W, H), class: "chart-line" }));
  const title = svg("title", {});
  title.textContent = label;
  root.appendChild(title);
  return root;
}
