import { STATUS_CODES } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineBytes, statusLine, statusLineBytes } from '../../src/engine/response';

describe('response head bytes', () => {
  it('LineBytes gives the bytes of each line asked for, whatever it kept before (property)', () => {
    const value = fc.oneof(fc.constantFrom('', 'a=1', 'a=2', 'FULCRUM=b1.x; Path=/; HttpOnly', 'caf\u00e9=1'), fc.string({ maxLength: 8 }));
    fc.assert(
      fc.property(fc.array(value, { maxLength: 20 }), (values) => {
        const lines = new LineBytes(3, 'set-cookie: ', '\r\n');
        for (const v of values) expect(lines.get(v).toString('latin1')).toBe(Buffer.from(`set-cookie: ${v}\r\n`, 'latin1').toString('latin1'));
      }),
      { seed: 17, numRuns: 1000 },
    );
  });

  it('statusLineBytes are the standard status lines, and nothing for another phrase', () => {
    for (const code of Object.keys(STATUS_CODES).map(Number)) {
      expect(statusLineBytes(code, '')!.toString('latin1')).toBe(statusLine(code, ''));
      expect(statusLineBytes(code, STATUS_CODES[code]!)!.toString('latin1')).toBe(statusLine(code, STATUS_CODES[code]!));
      expect(statusLineBytes(code, 'Custom')).toBeUndefined();
    }
    expect(statusLineBytes(299, '')).toBeUndefined();
  });
});
