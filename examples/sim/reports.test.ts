// The committed example reports are what the committed scenarios produce today: re-render them and
// compare byte for byte (the simulator is deterministic, so any difference is a stale report).
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

describe('examples/sim', () => {
  for (const { name, policies } of EXAMPLES) {
    it(`has an up-to-date ${name}.html (regenerate with the command in README.md)`, { timeout: 120_000 }, () => {
      const scenario = JSON.parse(readFileSync(here(`${name}.json`), 'utf8')) as Scenario;
      const html = renderReport(compare(scenario, policies), scenario.description === undefined ? {} : { description: scenario.description });
      expect(html === readFileSync(here(`${name}.html`), 'utf8'), `${name}.html is stale`).toBe(true);
    });
  }
});
