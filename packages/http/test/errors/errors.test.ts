// @fulcrum/http's own errors are FulcrumErrors with stable codes, and the package (and the adapters)
// re-export core's errors that their READMEs name, as the same classes.
import * as core from '@fulcrum/core';
import * as express from '@fulcrum/express-adapter';
import * as fastify from '@fulcrum/fastify-adapter';
import * as http from '@fulcrum/http';
import { DnsDiscoveryError, isDnsDiscoveryError } from '@fulcrum/http';
import * as sessionFs from '@fulcrum/session-fs';
import * as sessionRedis from '@fulcrum/session-redis';
import * as sessionSql from '@fulcrum/session-sql';
import * as sim from '@fulcrum/sim';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const readme = (dir: string) => readFileSync(new URL(`../../../${dir}/README.md`, import.meta.url), 'utf8');

describe("@fulcrum/http's errors", () => {
  it('makes DnsDiscoveryError a FulcrumError with its code, target and cause', () => {
    const cause = Object.assign(new Error('queryA ENOTFOUND users.internal'), { code: 'ENOTFOUND' });
    const error = new DnsDiscoveryError('users.internal:8080', 'no records', { cause });
    expect(core.isFulcrumError(error, core.ErrorCodes.DNS_DISCOVERY)).toBe(true);
    expect(isDnsDiscoveryError(error)).toBe(true);
    expect(isDnsDiscoveryError(new core.UpstreamError('connect'))).toBe(false);
    expect(error).toMatchObject({ name: 'DnsDiscoveryError', code: 'FULCRUM_DNS_DISCOVERY', target: 'users.internal:8080', cause });
  });

  it.each([
    ['http', http],
    ['express-adapter', express],
    ['fastify-adapter', fastify],
    ['session-fs', sessionFs],
    ['session-redis', sessionRedis],
    ['session-sql', sessionSql],
    ['sim', sim],
  ] as const)("has @fulcrum/%s export every error class its README names, as a FulcrumError (core's own class where core has it)", (dir, mod) => {
    const named = [...new Set([...readme(dir).matchAll(/`([A-Z][A-Za-z]*Error)`/g)].map((m) => m[1]!))];
    expect(named.length).toBeGreaterThan(0);
    const exported = mod as unknown as Record<string, unknown>;
    const fromCore = core as unknown as Record<string, unknown>;
    for (const name of named) {
      expect(exported[name], `${name}, named in ${dir}/README.md`).toBeTypeOf('function');
      if (name !== 'FulcrumError') expect((exported[name] as { prototype: unknown }).prototype, name).toBeInstanceOf(core.FulcrumError);
      if (name in fromCore) expect(exported[name], name).toBe(fromCore[name]);
    }
  });

  it('re-exports the errors its README names as the same classes and guards as core', () => {
    for (const name of [
      'ErrorCodes',
      'FulcrumError',
      'InvalidOptionError',
      'NoBackendAvailableError',
      'UpstreamError',
      'isFulcrumError',
      'isUpstreamError',
    ] as const) {
      expect(http[name], name).toBe(core[name]);
    }
  });

  it('has the adapters re-export InvalidOptionError, isFulcrumError and ErrorCodes from core', () => {
    for (const adapter of [express, fastify]) {
      expect(adapter.InvalidOptionError).toBe(core.InvalidOptionError);
      expect(adapter.isFulcrumError).toBe(core.isFulcrumError);
      expect(adapter.ErrorCodes).toBe(core.ErrorCodes);
    }
  });
});
