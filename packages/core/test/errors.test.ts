import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ErrorCodes,
  InvalidOptionError,
  NoBackendAvailableError,
  SessionConflictError,
  StoreUnavailableError,
  UpstreamError,
  isFulcrumError,
  isInvalidOptionError,
  isNoBackendAvailableError,
  isSessionConflictError,
  isStoreUnavailableError,
  isUpstreamError,
} from '@fulcrum/core';
import { InvariantViolation, ReplicatorConformanceError, StoreConformanceError } from '@fulcrum/core/testing';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const packageReadme = (name: string) => readFileSync(new URL(`../../${name}/README.md`, import.meta.url), 'utf8');

/** Codes whose classes live in other packages (their own tests check the classes): code, class, package. */
const elsewhere = [
  [ErrorCodes.DNS_DISCOVERY, 'DnsDiscoveryError', 'http'],
  [ErrorCodes.CONFIG_FILE, 'ConfigFileError', 'cli'],
  [ErrorCodes.CONFIG_PATH, 'ConfigPathError', 'cli'],
  [ErrorCodes.CORRUPT_FILE, 'CorruptFileError', 'session-fs'],
] as const;

describe('errors', () => {
  const cases = [
    [new InvalidOptionError('backends[0].weight', Number.NaN, 'must be a finite number ≥ 0'), ErrorCodes.INVALID_OPTION, isInvalidOptionError],
    [new NoBackendAvailableError(), ErrorCodes.NO_BACKEND, isNoBackendAvailableError],
    [new StoreUnavailableError(), ErrorCodes.STORE_UNAVAILABLE, isStoreUnavailableError],
    [new UpstreamError('timeout'), ErrorCodes.UPSTREAM, isUpstreamError],
    [new SessionConflictError('abc', 'changed', 3, 4), ErrorCodes.SESSION_CONFLICT, isSessionConflictError],
    [
      new InvariantViolation('weighted share: b got 0.4, expected 0.5'),
      ErrorCodes.INVARIANT_VIOLATION,
      (e: unknown) => isFulcrumError(e, ErrorCodes.INVARIANT_VIOLATION),
    ],
    [
      new StoreConformanceError('destroy', 'the session came back'),
      ErrorCodes.STORE_CONFORMANCE,
      (e: unknown) => isFulcrumError(e, ErrorCodes.STORE_CONFORMANCE),
    ],
    [
      new ReplicatorConformanceError('merge', 'an expired entry came back'),
      ErrorCodes.REPLICATOR_CONFORMANCE,
      (e: unknown) => isFulcrumError(e, ErrorCodes.REPLICATOR_CONFORMANCE),
    ],
  ] as const;

  it.each(cases)('%s has its code, a default message, its name and a guard', (error, code, guard) => {
    expect(error.code).toBe(code);
    expect(error.message.length).toBeGreaterThan(0);
    expect(error.name).toBe(error.constructor.name);
    expect(guard(error)).toBe(true);
    expect(isFulcrumError(error, code)).toBe(true);
    for (const [, other, otherGuard] of cases) if (other !== code) expect(otherGuard(error)).toBe(false);
  });

  it('documents every error code and class in the package README', () => {
    for (const [error, code] of cases) {
      expect(readme).toContain(`\`${code}\``);
      expect(readme).toContain(`\`${error.constructor.name}\``);
    }
  });

  it('lists every code of every package in the core README and in the README of the package that throws it', () => {
    for (const [code, className, owner] of elsewhere) {
      expect(readme).toContain(`\`${code}\``);
      expect(readme).toContain(`\`${className}\``);
      expect(packageReadme(owner)).toContain(code);
      expect(packageReadme(owner)).toContain(className);
    }
    // A new code must be added to one of the two lists above, hence documented.
    expect(new Set([...cases.map(([, code]) => code), ...elsewhere.map(([code]) => code)])).toEqual(new Set(Object.values(ErrorCodes)));
  });

  it('names the option and the value in an InvalidOptionError', () => {
    const error = new InvalidOptionError('backends[0].weight', Number.NaN, 'must be a finite number ≥ 0');
    expect(error.message).toBe('backends[0].weight: must be a finite number ≥ 0, got NaN');
    expect(error).toMatchObject({ path: 'backends[0].weight', expected: 'must be a finite number ≥ 0' });
  });

  it('keeps the cause', () => {
    const cause = new Error('ECONNREFUSED');
    expect(new UpstreamError('connect', undefined, { cause }).cause).toBe(cause);
  });

  it('recognises an error of another installed copy by its brand, and nothing without it', () => {
    const foreign = Object.assign(new Error('x'), { code: 'FULCRUM_NO_BACKEND' });
    Object.defineProperty(foreign, Symbol.for('fulcrum.error'), { value: true });
    expect(isNoBackendAvailableError(foreign)).toBe(true);
    expect(isFulcrumError({ code: 'FULCRUM_NO_BACKEND' })).toBe(false);
    expect(isFulcrumError(null)).toBe(false);
  });
});
