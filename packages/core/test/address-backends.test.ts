import { describe, expect, it } from 'vitest';
import { backendIdOf, createLoadBalancer, isInvalidOptionError } from '@fulcrum/core';

describe('backends given as addresses', () => {
  it('derive their id from the address and take the defaults', () => {
    const lb = createLoadBalancer({ backends: ['http://10.0.0.1:3000', { id: 'named', address: '10.0.0.2:3000', weight: 2 }] });
    const [first, second] = lb.backends;
    expect(first!.id).toBe(backendIdOf('http://10.0.0.1:3000'));
    expect(first!.address).toBe('http://10.0.0.1:3000');
    expect(first!.weight).toBe(1);
    expect(first!.backup).toBe(false);
    expect(second!.id).toBe('named');
    lb.close();
  });

  it('work in add() and update(), where the same address is the same backend', () => {
    const lb = createLoadBalancer({ backends: ['http://10.0.0.1:3000'] });
    const before = lb.backends[0]!;
    const change = lb.update(['http://10.0.0.1:3000', 'http://10.0.0.3:3000']);
    expect(change.added).toEqual([backendIdOf('http://10.0.0.3:3000')]);
    expect(change.removed).toEqual([]);
    expect(lb.backends[0]).toBe(before);
    expect(lb.add('http://10.0.0.4:3000').id).toBe(backendIdOf('10.0.0.4:3000'));
    expect(() => lb.add('http://10.0.0.4:3000')).toThrow(/must be unique/);
    lb.close();
  });

  it('refuses a bad address and the same address twice, naming the entry', () => {
    const attempt = (backends: unknown[]) => {
      try {
        createLoadBalancer({ backends: backends as string[] });
      } catch (error) {
        return error;
      }
      return undefined;
    };
    const bad = attempt(['http://10.0.0.1:3000/path']);
    expect(isInvalidOptionError(bad) && bad.path).toBe('backends[0]');
    const twice = attempt(['http://a.example', 'http://A.example:80']);
    expect(isInvalidOptionError(twice) && twice.message).toMatch(/^backends\[1\]: must be another backend than backends\[0\]/);
    expect(isInvalidOptionError(attempt([42]))).toBe(true);
  });
});
