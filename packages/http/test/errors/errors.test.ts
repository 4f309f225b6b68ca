// @fulcrum/http's own errors are FulcrumErrors with stable codes, and the package (and the adapters)
// re-export core's errors that their READMEs name, as the same classes.
import * as core from '@fulcrum/core';
import * as express from '@fulcrum/express-adapter';
import * as fastify from '@fulcrum/fastify-adapter';
import * as http from '@fulcrum/http';
import { DnsDiscoveryError, isDnsDiscoveryError } from '@fulcrum/http';
import { describe, expect, it } from 'vitest';

describe("@fulcrum/http's errors", () => {
  it('makes DnsDiscoveryError a FulcrumError with its code, target and cause', () => {
    const cause = Object.assign(new Error('queryA ENOTFOUND users.internal'), { code: 'ENOTFOUND' });
    const error = new DnsDiscoveryError('users.internal:8080', 'no records', { cause });
    expect(core.isFulcrumError(error, core.ErrorCodes.DNS_DISCOVERY)).toBe(true);
    expect(isDnsDiscoveryError(error)).toBe(true);
    expect(isDnsDiscoveryError(new core.UpstreamError('connect'))).toBe(false);
    expect(error).toMatchObject({ name: 'DnsDiscoveryError', code: 'FULCRUM_DNS_DISCOVERY', target: 'users.internal:8080', cause });
  });

  it('re-exports the errors its README names as the same classes and guards as core', () => {
    for (const name of ['ErrorCodes', 'FulcrumError', 'InvalidOptionError', 'NoBackendAvailableError', 'UpstreamError', 'isFulcrumError', 'isUpstreamError'] as const) {
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
