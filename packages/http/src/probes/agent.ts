/**
 * Agent-style reports inside a probe response: a backend tells the load balancer its own weight and
 * administrative wishes, in a header or a small JSON body.
 *
 * The header vocabulary is HAProxy's agent-check (`agent-check` in the HAProxy configuration manual):
 * words separated by commas, spaces or tabs — `75%` (this share of the configured weight), `ready`,
 * `drain`, `maint`, `down` / `fail` / `stopped` (optionally with a `#description`), `up`. HAProxy
 * reads them from a separate TCP agent; carrying them on the HTTP health response instead (as
 * Envoy's and several service meshes' health responses do with headers) needs no second port.
 * Words we do not know — HAProxy's `maxconn:N`, typos, garbage — are ignored one by one, so a
 * newer agent talking to an older balancer degrades to what both understand.
 *
 * The JSON body is for backends that would rather answer `{ "status": "draining",
 * "weightPercent": 75 }` than set a header. It is parsed only when the response says it is JSON and
 * is at most `AGENT_BODY_LIMIT` bytes: a health endpoint that returns a page is not an agent, and a
 * bounded read keeps a misbehaving backend from making the balancer buffer megabytes every check.
 *
 * What the words can do is asymmetric on purpose: `down` turns a passing check into a failure, but
 * `up` cannot make a failing status pass — the HTTP status is the check, the agent only refines it.
 * And a JSON `"status": "ok"` is a plain pass, not `ready`: `ready` takes a backend out of drain and
 * maintenance, and a health endpoint answering "ok" on every check would otherwise undo every
 * `lb.drain()` an operator issues. A backend that wants out of drain says `ready` explicitly.
 */

/** What an agent asked for. Every field is absent unless the agent said it. */
export interface AgentReport {
  /** `down`, `fail` or `stopped`: fail the check whatever the status said. */
  down?: boolean;
  /** `NN%`: this share of the configured weight, clamped to 0..100. */
  weightPercent?: number;
  drain?: boolean;
  ready?: boolean;
  maintenance?: boolean;
  /** The text after `#` (HAProxy's description), for the check's detail. */
  description?: string;
}

/** The largest JSON body read for an agent report, in bytes: a status object needs a few dozen. */
export const AGENT_BODY_LIMIT = 4096;

// HAProxy accepts integer percentages; decimals cost nothing to accept and round-trip the core's clamp.
const PERCENT = /^(\d{1,3}(?:\.\d{1,3})?)%$/;
const MAX_WORDS = 16;
const MAX_DESCRIPTION = 120;

/**
 * Read HAProxy agent words from a header value. Unknown words are skipped; an empty or all-garbage
 * value gives an empty report. Only the first 16 words count (a header is not a place for essays).
 */
export function parseAgentWords(value: string): AgentReport {
  const report: AgentReport = {};
  const sharp = value.indexOf('#');
  if (sharp !== -1) {
    const description = value.slice(sharp + 1).trim();
    if (description !== '') report.description = description.slice(0, MAX_DESCRIPTION);
  }
  const words = (sharp === -1 ? value : value.slice(0, sharp)).split(/[\s,]+/, MAX_WORDS);
  for (const raw of words) {
    const word = raw.toLowerCase();
    switch (word) {
      case 'ready':
        report.ready = true;
        break;
      case 'drain':
        report.drain = true;
        break;
      case 'maint':
        report.maintenance = true;
        break;
      case 'down':
      case 'fail':
      case 'stopped':
        report.down = true;
        break;
      default: {
        const match = PERCENT.exec(word);
        if (match !== null) report.weightPercent = Math.min(100, Number(match[1]));
      }
    }
  }
  return report;
}

/**
 * Read `{ "status": "ok" | "ready" | "draining" | "maintenance" | "down", "weightPercent": n }`.
 * Returns `undefined` for text that is not a JSON object; fields of the wrong type or unknown
 * statuses are ignored (the rest of the object still counts).
 */
export function parseAgentJson(text: string): AgentReport | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { status, weightPercent } = value as Record<string, unknown>;
  const report: AgentReport = {};
  switch (typeof status === 'string' ? status.toLowerCase() : undefined) {
    case 'ready':
      report.ready = true;
      break;
    case 'draining':
      report.drain = true;
      break;
    case 'maintenance':
      report.maintenance = true;
      break;
    case 'down':
      report.down = true;
      break;
    default:
      // 'ok', 'up' and anything else: a pass decided by the HTTP status alone.
      break;
  }
  if (typeof weightPercent === 'number' && Number.isFinite(weightPercent)) {
    report.weightPercent = Math.min(100, Math.max(0, weightPercent));
  }
  return report;
}

/** Combine reports; the header (the agent protocol proper) wins a conflicting percentage. */
export function mergeAgentReports(primary: AgentReport, secondary: AgentReport): AgentReport {
  const merged: AgentReport = { ...secondary, ...primary };
  if (primary.down === true || secondary.down === true) merged.down = true;
  if (primary.drain === true || secondary.drain === true) merged.drain = true;
  if (primary.ready === true || secondary.ready === true) merged.ready = true;
  if (primary.maintenance === true || secondary.maintenance === true) merged.maintenance = true;
  return merged;
}
