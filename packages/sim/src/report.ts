/**
 * The HTML report: one self-contained page — inline CSS and SVG, no script, no external asset, no
 * font to fetch — that compares policies on one scenario: a summary table, the latency CDF of every
 * policy, p99 over time, and each policy's load per backend over time, with the scenario's changes
 * and the load balancer's events (ejections, state changes, panic) marked where they happened.
 * Every string that came from the scenario or a policy is escaped.
 */
import type { SimulationResult } from './simulate';

export interface ReportOptions {
  /** The page title. Default: the scenario's name. */
  title?: string;
  /** A paragraph under the title (plain text). */
  description?: string;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const WIDTH = 760;
const HEIGHT = 300;
const MARGIN = { left: 64, right: 16, top: 28, bottom: 44 };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function fmt(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toFixed(abs >= 1e7 ? 0 : 1)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(abs >= 1e5 ? 0 : 1)}k`;
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 1) return value.toFixed(abs >= 10 ? 1 : 2);
  if (abs === 0) return '0';
  return value.toPrecision(2);
}

interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
}

interface Marker {
  x: number;
  label: string;
}

interface ChartOptions {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  markers?: Marker[];
  xLog?: boolean;
  yMax?: number;
}

function niceTicks(min: number, max: number, count: number): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** One line chart as an SVG element. */
function lineChart(o: ChartOptions): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const all = o.series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]).filter((x) => (o.xLog ? x > 0 : Number.isFinite(x)));
  const ys = all.map((p) => p[1]).filter(Number.isFinite);
  let xMin = xs.length ? Math.min(...xs) : 0;
  let xMax = xs.length ? Math.max(...xs) : 1;
  if (o.xLog) {
    xMin = 10 ** Math.floor(Math.log10(xMin || 1));
    xMax = 10 ** Math.ceil(Math.log10(xMax || 10));
    if (xMax <= xMin) xMax = xMin * 10;
  } else if (xMax <= xMin) xMax = xMin + 1;
  const yMax = o.yMax ?? Math.max(1e-9, ...ys) * 1.05;
  const sx = (x: number): number =>
    MARGIN.left + (o.xLog ? (Math.log10(Math.max(x, xMin)) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin)) : (x - xMin) / (xMax - xMin)) * plotW;
  const sy = (y: number): number => MARGIN.top + plotH - (Math.min(y, yMax) / yMax) * plotH;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="${escapeHtml(o.id)}" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${escapeHtml(o.title)}">`,
  );
  parts.push(`<text x="${MARGIN.left}" y="18" class="title">${escapeHtml(o.title)}</text>`);
  // Axes and grid.
  const yTicks = niceTicks(0, yMax, 5);
  for (const t of yTicks) {
    const y = sy(t).toFixed(1);
    parts.push(
      `<line class="grid" x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${y}" y2="${y}"/><text class="tick" x="${MARGIN.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`,
    );
  }
  const xTicks = o.xLog ? Array.from({ length: Math.round(Math.log10(xMax / xMin)) + 1 }, (_, i) => xMin * 10 ** i) : niceTicks(xMin, xMax, 8);
  for (const t of xTicks) {
    const x = sx(t).toFixed(1);
    parts.push(
      `<line class="grid" x1="${x}" x2="${x}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}"/><text class="tick" x="${x}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${fmt(t)}</text>`,
    );
  }
  parts.push(`<rect class="frame" x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}"/>`);
  parts.push(`<text class="label" x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 6}" text-anchor="middle">${escapeHtml(o.xLabel)}</text>`);
  parts.push(`<text class="label" transform="translate(14 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(o.yLabel)}</text>`);
  // Events.
  for (const m of o.markers ?? []) {
    if (m.x < xMin || m.x > xMax) continue;
    const x = sx(m.x).toFixed(1);
    parts.push(
      `<line class="marker" data-event="${escapeHtml(m.label)}" x1="${x}" x2="${x}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}"><title>${escapeHtml(`${fmt(m.x)} ms: ${m.label}`)}</title></line>`,
    );
  }
  // Data.
  for (const s of o.series) {
    const points = s.points.filter(([x, y]) => Number.isFinite(y) && (!o.xLog || x > 0));
    if (points.length === 0) continue;
    const d = points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    parts.push(
      `<polyline class="series" data-series="${escapeHtml(s.name)}" data-points="${points.length}" fill="none" stroke="${s.color}" stroke-width="1.6" points="${d}"><title>${escapeHtml(s.name)}</title></polyline>`,
    );
  }
  // Legend.
  o.series.forEach((s, i) => {
    const x = MARGIN.left + 8 + (i % 4) * 170;
    const y = MARGIN.top + 12 + Math.floor(i / 4) * 14;
    parts.push(
      `<rect x="${x}" y="${y - 8}" width="10" height="3" fill="${s.color}"/><text class="legend" x="${x + 14}" y="${y - 4}" dominant-baseline="middle">${escapeHtml(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:800px;color:#222;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;width:100%}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
.chart{display:block;margin:8px 0;max-width:100%;height:auto}
.chart .title{font-weight:600;font-size:13px}.chart .tick,.chart .legend{font-size:11px;fill:#444}.chart .label{font-size:12px;fill:#222}
.chart .grid{stroke:#eee}.chart .frame{fill:none;stroke:#999}.chart .marker{stroke:#b00;stroke-dasharray:4 3;stroke-width:1}
.muted{color:#666}ul.events{font-size:12px;color:#444;columns:2}
`;

/**
 * The report for several policies run on one scenario (one result per policy, as `compare` returns).
 * A string of HTML: write it to a file and open it in any browser.
 */
export function renderReport(results: readonly SimulationResult[], options: ReportOptions = {}): string {
  if (results.length === 0) throw new RangeError('renderReport: needs at least one result');
  const first = results[0]!;
  const title = options.title ?? first.scenario;
  const color = (i: number): string => PALETTE[i % PALETTE.length]!;
  const changes = first.events.filter((e) => e.kind === 'change');
  const changeMarkers: Marker[] = changes.map((e) => ({ x: e.atMs, label: e.detail }));
  const out: string[] = [];
  out.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">`);
  out.push(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`);
  out.push(`<title>${escapeHtml(title)} — Fulcrum simulation</title><style>${STYLE}</style></head><body>`);
  out.push(`<h1>${escapeHtml(title)}</h1>`);
  if (options.description) out.push(`<p>${escapeHtml(options.description)}</p>`);
  out.push(
    `<p class="muted">Seed ${first.seed} · ${fmt(first.requests)} measured requests per policy · ${fmt(first.simulatedMs / 1000)} s simulated · made by @fulcrum/sim with the real load balancer</p>`,
  );

  out.push(
    '<h2>Summary</h2><table id="summary"><thead><tr><th>policy</th><th>mean ms</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th><th>retries</th><th>ejections</th></tr></thead><tbody>',
  );
  for (const r of results) {
    out.push(
      `<tr data-policy="${escapeHtml(r.policy)}"><td>${escapeHtml(r.policy)}</td><td>${fmt(r.meanMs)}</td><td>${fmt(r.p50)}</td><td>${fmt(r.p90)}</td><td>${fmt(r.p99)}</td><td>${fmt(r.p999)}</td><td>${fmt(r.maxMs)}</td><td>${r.failed}</td><td>${r.retries}</td><td>${r.ejections}</td></tr>`,
    );
  }
  out.push('</tbody></table>');

  out.push('<h2>Latency</h2>');
  out.push(
    lineChart({
      id: 'latency-cdf',
      title: 'Latency CDF (fraction of requests answered within x ms)',
      xLabel: 'latency, ms (log scale)',
      yLabel: 'fraction of requests',
      xLog: true,
      yMax: 1,
      // From the 0.1th percentile: the fastest few requests would stretch the log axis over decades.
      series: results.map((r, i) => ({ name: r.policy, color: color(i), points: r.cdf.filter(([, fraction]) => fraction >= 0.001) })),
    }),
  );
  out.push(
    lineChart({
      id: 'p99-over-time',
      title: 'p99 latency over time (by arrival)',
      xLabel: 'simulated time, ms',
      yLabel: 'p99, ms',
      series: results.map((r, i) => ({
        name: r.policy,
        color: color(i),
        points: r.timeline.startMs.map((t, k) => [t, r.timeline.p99[k]!] as [number, number]).filter((_, k) => r.timeline.requests[k]! > 0),
      })),
      markers: changeMarkers,
    }),
  );

  results.forEach((r, i) => {
    out.push(`<h2>Load per backend — ${escapeHtml(r.policy)}</h2>`);
    const interval = r.timeline.intervalMs;
    const markers = [
      ...changeMarkers,
      ...r.events.filter((e) => e.kind !== 'change').map((e) => ({ x: e.atMs, label: `${e.backend ?? ''} ${e.detail}`.trim() })),
    ];
    out.push(
      lineChart({
        id: `load-${i}`,
        title: `Requests per second sent to each backend (${r.policy})`,
        xLabel: 'simulated time, ms',
        yLabel: 'requests / s',
        series: r.backends.map((b, k) => ({
          name: b.id,
          color: color(k),
          points: b.requestsOverTime.map((c, j) => [r.timeline.startMs[j]!, (c * 1000) / interval] as [number, number]),
        })),
        markers,
      }),
    );
    const notable = r.events.slice(0, 40);
    if (notable.length > 0) {
      out.push(
        `<ul class="events">${notable.map((e) => `<li>${fmt(e.atMs)} ms — ${escapeHtml(e.backend ? `${e.backend}: ${e.detail}` : e.detail)}</li>`).join('')}${r.events.length > 40 ? `<li>… ${r.events.length - 40 + r.eventsDropped} more</li>` : ''}</ul>`,
      );
    }
  });
  out.push('</body></html>');
  return out.join('\n');
}
