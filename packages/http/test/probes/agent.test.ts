import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAgentJson, parseAgentWords } from '../../src/probes';

describe('parseAgentWords (HAProxy agent-check vocabulary)', () => {
  it.each([
    ['drain', { drain: true }],
    ['ready', { ready: true }],
    ['maint', { maintenance: true }],
    ['down', { down: true }],
    ['fail', { down: true }],
    ['stopped#shutting down', { down: true, description: 'shutting down' }],
    ['75%', { weightPercent: 75 }],
    ['12.5%', { weightPercent: 12.5 }],
    ['250%', { weightPercent: 100 }],
    ['DRAIN,\t50%  maint', { drain: true, weightPercent: 50, maintenance: true }],
    ['up', {}],
    ['maxconn:30, hello, %, 5 %, -1%, 0x10%', {}],
    ['', {}],
  ])('reads %j as %j', (value, expected) => {
    expect(parseAgentWords(value)).toEqual(expected);
  });

  it('never throws and keeps any percentage within 0..100 whatever the header says', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (value) => {
        const report = parseAgentWords(value);
        if (report.weightPercent !== undefined) expect(report.weightPercent >= 0 && report.weightPercent <= 100).toBe(true);
        if (report.description !== undefined) expect(report.description.length).toBeLessThanOrEqual(120);
      }),
      { seed: 4242, numRuns: 500 },
    );
  });
});

describe('parseAgentJson', () => {
  it.each([
    ['{"status":"ok","weightPercent":75}', { weightPercent: 75 }],
    ['{"status":"draining"}', { drain: true }],
    ['{"status":"maintenance"}', { maintenance: true }],
    ['{"status":"ready"}', { ready: true }],
    ['{"status":"down"}', { down: true }],
    ['{"status":42,"weightPercent":"75"}', {}],
    ['{"weightPercent":-3}', { weightPercent: 0 }],
    ['{"weightPercent":1e400}', {}],
    ['{"status":"sleeping"}', {}],
  ])('reads %s as %j', (text, expected) => {
    expect(parseAgentJson(text)).toEqual(expected);
  });

  it.each(['', 'null', '[]', '"draining"', '{', '12'])('returns undefined for %j, which is not a JSON object', (text) => {
    expect(parseAgentJson(text)).toBeUndefined();
  });
});
