import * as grpc from '@grpc/grpc-js';
import { isFulcrumError, isInvalidOptionError } from '@fulcrum/core';
import { fulcrumServiceConfig, normalizeFulcrumPolicyOptions, onLoadBalancer } from '@fulcrum/grpc';
import { afterEach, describe, expect, it } from 'vitest';
import { EchoClient, startBackend, unary } from './fixtures';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function pathOf(options: unknown): string {
  try {
    normalizeFulcrumPolicyOptions(options);
  } catch (error) {
    expect(isFulcrumError(error, 'FULCRUM_INVALID_OPTION')).toBe(true);
    if (isInvalidOptionError(error)) return error.path;
  }
  return 'accepted';
}

describe('the policy config', () => {
  it('defaults to p2c with the three failure statuses of the issue', () => {
    const c = normalizeFulcrumPolicyOptions({});
    expect(c.algorithm).toBe('p2c');
    expect(c.failureStatuses).toEqual([grpc.status.UNAVAILABLE, grpc.status.INTERNAL, grpc.status.UNKNOWN]);
    expect(c.panicThreshold).toBe(0.5);
    expect(c.name).toBe('grpc');
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('names the field path of each mistake', () => {
    expect(pathOf({ algorithm: 'fastest' })).toBe('fulcrum.algorithm');
    expect(pathOf({ algoritm: 'p2c' })).toBe('fulcrum.algoritm');
    expect(pathOf({ algorithm: 'maglev' })).toBe('fulcrum.hashKey');
    expect(pathOf({ algorithm: 'p2c', hashKey: { metadata: 'x-user' } })).toBe('fulcrum.hashKey');
    expect(pathOf({ algorithm: 'maglev', hashKey: { metadata: 'X-User' } })).toBe('fulcrum.hashKey.metadata');
    expect(pathOf({ algorithm: 'maglev', hashKey: { metadata: 'token-bin' } })).toBe('fulcrum.hashKey.metadata');
    expect(pathOf({ algorithm: 'maglev', hashKey: { header: 'x' } })).toBe('fulcrum.hashKey.header');
    expect(pathOf({ algorithm: 'maglev', hashKey: { metadata: 'k' }, algorithmOptions: { tableSize: 100 } })).toMatch(/^fulcrum\.algorithmOptions\./);
    expect(pathOf({ algorithmOptions: { size: 1 } })).toBe('fulcrum.algorithmOptions.size');
    expect(pathOf({ outlier: { baseEjectionMs: -1 } })).toBe('fulcrum.outlier.baseEjectionMs');
    expect(pathOf({ outlier: { isFailure: 'x' } })).toBe('fulcrum.outlier.isFailure');
    expect(pathOf({ slowStart: {} })).toMatch(/^fulcrum\.slowStart/);
    expect(pathOf({ panicThreshold: 2 })).toBe('fulcrum.panicThreshold');
    expect(pathOf({ latencyDecayMs: 0 })).toBe('fulcrum.latencyDecayMs');
    expect(pathOf({ failureStatuses: 'UNAVAILABLE' })).toBe('fulcrum.failureStatuses');
    expect(pathOf({ failureStatuses: ['UNAVAILABLE', 'BROKEN'] })).toBe('fulcrum.failureStatuses[1]');
    expect(pathOf({ failureStatuses: ['CANCELLED'] })).toBe('fulcrum.failureStatuses[0]');
    expect(pathOf({ failureStatuses: [0] })).toBe('fulcrum.failureStatuses[0]');
    expect(pathOf({ healthCheck: { serviceName: 3 } })).toBe('fulcrum.healthCheck.serviceName');
    expect(pathOf({ healthCheck: { service: '' } })).toBe('fulcrum.healthCheck.service');
    expect(pathOf({ name: '' })).toBe('fulcrum.name');
    expect(pathOf('p2c')).toBe('fulcrum');
  });

  it('accepts statuses by name or number, and every option at once', () => {
    const c = normalizeFulcrumPolicyOptions({
      algorithm: 'ring-hash',
      algorithmOptions: { minRingSize: 64, maxRingSize: 4096 },
      hashKey: { metadata: 'x-tenant' },
      outlier: { consecutiveFailures: 2 },
      slowStart: { windowMs: 1000 },
      panicThreshold: 0,
      latencyDecayMs: 5000,
      failureStatuses: ['UNAVAILABLE', 4, 'UNAVAILABLE'],
      healthCheck: { serviceName: 'svc' },
      name: 'users',
    });
    expect(c.failureStatuses).toEqual([14, 4]);
    expect(c.failureMask).toBe((1 << 14) | (1 << 4));
  });

  it('fulcrumServiceConfig throws where grpc-js would silently skip the entry', () => {
    expect(() => fulcrumServiceConfig({ algorithm: 'fastest' })).toThrow(/fulcrum\.algorithm/);
    expect(fulcrumServiceConfig({ algorithm: 'peak-ewma' })).toEqual({ loadBalancingConfig: [{ fulcrum: { algorithm: 'peak-ewma' } }] });
  });

  it('a channel whose only entry is invalid falls back to pick_first without a word — why fulcrumServiceConfig validates first', async () => {
    const b = await startBackend('b0');
    cleanup.push(() => b.close());
    const created: string[] = [];
    cleanup.push(onLoadBalancer((lb) => created.push(lb.name)));
    const client = new EchoClient(`ipv4:${b.address}`, grpc.credentials.createInsecure(), {
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ fulcrum: { algorithm: 'fastest', name: 'invalid-config' } }] }),
    }) as EchoClient;
    cleanup.push(() => client.close());
    expect((await unary(client, {}, { deadlineMs: 3000 })).backend).toBe('b0');
    expect(created).not.toContain('invalid-config');
  });
});
