// The committed example reports come from the committed scenarios: re-render each and compare what
// does not depend on a balancer's exact choices — title, description, seed and request count, the
// policies in the table, the charts and the series each carries. (The numbers move whenever a
// balancer's tie-breaking does; regenerate the reports then, with the command in README.md.)
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compare, renderReport } from '@fulcrum/sim';
import type { Scenario } from '@fulcrum/sim';

const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));

const EXAMPLES = [
  { name: 'slow-node', policies: ['peak-ewma', 'p2c', 'least-connections', 'round-robin', 'random'] },
  { name: 'rolling-deploy', policies: ['p2c', 'peak-ewma', 'least-connections', 'round-robin'] },
];

/** The parts of a report that a scenario and a list of policies fix. */
function outline(html: string): string[] {
  const pick = (pattern: RegExp) => [...html.matchAll(pattern)].map((m) => m[1]!);
  return [
    ...pick(/<h1>(.*?)<\/h1>/g),
    ...pick(/<p>(.*?)<\/p>/g),
    ...pick(/<p class="muted">(.*?)<\/p>/g),
    ...pick(/<tr data-policy="([^"]*)"/g),
    ...pick(/<svg [^>]*id="([^"]*)"/g),
    ...pick(/data-series="([^"]*)"/g),
    ...pick(/<line class="marker" data-event="(deploy[^"]*|[^"]*slower|recover[^"]*)"/g),
  ];
}

describe('examples/sim', () => {
  for (const { name, policies } of EXAMPLES) {
    it(`has a ${name}.html made from ${name}.json (regenerate with the command in README.md)`, { timeout: 120_000 }, () => {
      const scenario = JSON.parse(readFileSync(here(`${name}.json`), 'utf8')) as Scenario;
      const html = renderReport(compare(scenario, policies), scenario.description === undefined ? {} : { description: scenario.description });
      const committed = readFileSync(here(`${name}.html`), 'utf8');
      expect(outline(committed)).toEqual(outline(html));
      expect(outline(html).length).toBeGreaterThan(20);
    });
  }
});
