// The JSON Schema editors read (schema/fulcrum.schema.json) and the validator `fulcrum --check`
// runs (src/config.ts) must not drift apart. Three checks, each able to fail on its own:
//  1. a few full configs together use every property the schema describes, and both the schema
//     (ajv, draft 2020-12) and the validator accept each of them;
//  2. at every object of those configs, an unknown key is refused by both, and where the validator
//     lists the keys it knows, they are exactly the schema's;
//  3. configs generated from them (keys dropped, values replaced by boundary and wrong-typed values,
//     fast-check, fixed seed): whatever the validator accepts, the schema accepts too.
import { readFileSync } from 'node:fs';
import Ajv2020Module from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInvalidOptionError, type InvalidOptionError } from '@fulcrum/core';
import { validateConfig } from '../src/config';
import { certDir, type CertDir } from '../../http/test/tls/certs';
import { SECRET, TOKEN } from './helpers';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
interface SchemaNode {
  type?: string | string[];
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  items?: SchemaNode;
  oneOf?: SchemaNode[];
  anyOf?: SchemaNode[];
}

const schema = JSON.parse(readFileSync(new URL('../schema/fulcrum.schema.json', import.meta.url), 'utf8')) as SchemaNode;
const Ajv2020 = ((Ajv2020Module as unknown as { default?: unknown }).default ?? Ajv2020Module) as new (options: Record<string, unknown>) => {
  compile(schema: unknown): ((data: unknown) => boolean) & { errors?: unknown };
};
const schemaAccepts = new Ajv2020({ allErrors: true, strict: false, validateFormats: false }).compile(schema);

let certs: CertDir;
const pems = new Map<string, string>();

beforeAll(() => {
  certs = certDir();
  const made = certs.make('a', 'a.example', ['a.example']);
  pems.set('/conf/a.pem', made.cert);
  pems.set('/conf/a.key', made.key);
});
afterAll(() => certs.remove());

/** The validator as `fulcrum --check` runs it, with the files served from memory. */
function validatorVerdict(config: unknown): { ok: true } | { ok: false; error: InvalidOptionError } {
  try {
    validateConfig(config, {
      env: {},
      baseDir: '/conf',
      readFile: (path) => {
        const pem = pems.get(path);
        if (pem === undefined) throw new Error(`no such file ${path}`);
        return pem;
      },
      checkWritable: () => undefined,
    });
    return { ok: true };
  } catch (error) {
    if (!isInvalidOptionError(error)) throw error;
    return { ok: false, error: error as InvalidOptionError };
  }
}

/** Keys the API takes that JSON cannot express (functions): the validator refuses any value for them. */
const API_ONLY_KEYS = new Set(['isFailure']);

const backend = (id: string): Json => ({ id, address: `http://127.0.0.1:${3000 + id.length}` });

/** Every property of the schema appears in one of these (check 1 says which are missing). */
function fullConfigs(): Record<string, Json>[] {
  const rateLimit = { requests: 100, windowMs: 1000, concurrent: 10, by: { header: 'x-user' }, status: 429, capacity: 1000, shared: false };
  const cookie = { name: 'srv', secrets: [SECRET], maxAgeMs: 60_000, path: '/', domain: 'example.com', sameSite: 'Lax', httpOnly: true, secure: true };
  return [
    {
      $schema: './node_modules/@fulcrum/cli/schema/fulcrum.schema.json',
      frontends: [
        {
          port: 0,
          host: '127.0.0.1',
          engine: 'raw',
          stats: true,
          metrics: true,
          maxConnections: 100,
          http2: {
            h2c: true,
            maxConcurrentStreams: 100,
            maxHeaderListSize: 16_384,
            maxHeaderListPairs: 104,
            maxResetsPerSecond: 100,
            maxSessionMemoryMb: 10,
            idleTimeoutMs: 120_000,
          },
        },
        { port: 0, host: 'localhost', engine: 'node', redirectToHttps: { port: 8443, hosts: ['a.example'] } },
      ],
      pools: {
        web: {
          backends: [
            { id: 'b1', address: 'http://127.0.0.1:3001', weight: 2, backup: false, maxConnections: 10, zone: 'z1', metadata: { rack: 'r1' } },
            backend('b2'),
          ],
          algorithm: 'round-robin',
          upstreamProtocol: 'h2',
          grpc: { failureStatuses: [14, 13], idempotentMethods: ['/users.v1.Users/Get'] },
          health: {
            type: 'http',
            path: '/health',
            method: 'GET',
            expectStatus: 200,
            headers: { 'x-check': '1' },
            host: 'a.example',
            agentHeader: 'x-agent',
            rise: 2,
            fall: 3,
            intervalMs: 2000,
            fastIntervalMs: 1000,
            downIntervalMs: 3000,
            timeoutMs: 1000,
            jitter: 0.1,
            initialState: 'up',
          },
          outlier: {
            intervalMs: 10_000,
            baseEjectionMs: 30_000,
            maxEjectionMs: 300_000,
            maxEjectionPercent: 10,
            alwaysEjectOneHost: true,
            consecutiveFailures: 5,
            enforceConsecutiveFailures: true,
            successRateStdevFactor: 1.9,
            successRateRequestVolume: 100,
            successRateMinimumHosts: 5,
            enforceSuccessRate: true,
            failurePercentageThreshold: 85,
            failurePercentageRequestVolume: 50,
            failurePercentageMinimumHosts: 5,
            enforceFailurePercentage: false,
          },
          slowStart: { windowMs: 10_000, aggression: 1, minWeightPercent: 10 },
          panicThreshold: 0.5,
          latencyDecayMs: 10_000,
          stickiness: { cookie },
          rateLimit,
          attempts: 2,
          retryOn: ['connect', 'reset'],
          retryNonIdempotent: false,
          retryBudget: { percent: 20, minConcurrency: 3 },
          maxReplayBytes: 1024,
          maxQueue: 10,
          queueTimeoutMs: 1000,
          timeouts: { connectMs: 1000, headersMs: 1000, idleMs: 1000, totalMs: 0 },
          connectionsPerBackend: 8,
          preserveHost: true,
          forwardedHeaders: true,
          backendTls: { rejectUnauthorized: true },
          maxHeaderCount: 100,
          upgradeTimeouts: { handshakeMs: 1000, tunnelMs: 60_000 },
        },
        api: {
          backends: [backend('a1')],
          algorithm: 'ring-hash',
          hashBy: 'uri',
          stickiness: { sourceIp: { trustedProxies: ['10.0.0.0/8'] }, ttlMs: 60_000 },
          health: { type: 'tcp' },
        },
        canary: { backends: [backend('c1')], stickiness: { header: 'x-session' } },
        learn: { backends: [backend('l1')], stickiness: { learnCookie: 'sid' } },
      },
      routes: [
        {
          name: 'api',
          match: { host: 'a.example', pathPrefix: '/api', method: ['GET', 'POST'], header: { name: 'x-api', value: '1' }, cookie: 'beta' },
          pool: 'api',
          rewritePrefix: '/',
          rateLimit: { ...rateLimit, by: 'source-ip' },
        },
        {
          name: 'exact',
          match: { path: '/exact', method: 'GET' },
          split: [
            { pool: 'web', weight: 90 },
            { pool: 'canary', weight: 10 },
          ],
        },
        { name: 'learn', match: { pathPrefix: '/learn' }, pool: 'learn' },
        { pool: 'web' },
      ],
      encodedDotSegments: 'reject',
      split: { cookie: { ...cookie, name: 'split' }, headerOverride: 'x-pool' },
      trustedProxies: ['10.0.0.0/8'],
      replication: { redis: { url: 'redis://127.0.0.1:6379', channel: 'fulcrum', key: 'fulcrum:sticky' } },
      nodeId: 'node-1',
      stats: { path: '/fulcrum', title: 'Fulcrum', refreshMs: 1000, port: 9101, host: '127.0.0.1', auth: { token: TOKEN } },
      metrics: { path: '/metrics', port: 9102, host: '127.0.0.1', auth: { username: 'prometheus', password: TOKEN } },
      admin: { token: TOKEN, port: 9100, host: '127.0.0.1' },
      accessLog: { format: 'json', path: 'access.log', bufferBytes: 4096, flushMs: 100 },
      rateLimit,
      shutdown: { graceMs: 1000 },
      workers: { accept: 'workers' },
      server: { headersTimeoutMs: 20_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 5000, maxConnections: 1000 },
    },
    {
      frontends: [{ port: 0, host: '127.0.0.1', stats: true }],
      pools: { web: { backends: [backend('b1')] }, other: { backends: [backend('o1')] } },
      routes: [
        { match: { header: { name: 'x-tenant', regex: '[a-z]{1,16}' } }, pool: 'other', rateLimit: { concurrent: 5, by: { header: 'x-tenant' } } },
        {
          split: [
            { pool: 'web', weight: 1 },
            { pool: 'other', weight: 1 },
          ],
        },
      ],
      split: { cookie: false, headerOverride: false },
      encodedDotSegments: 'pass',
      replication: { sql: { url: 'mysql://root@127.0.0.1:3306/test', table: 'fulcrum_sticky' } },
      stats: { path: '/fulcrum', auth: { username: 'ops', password: TOKEN } },
      metrics: { path: '/metrics', port: 9102, auth: { token: TOKEN } },
      admin: { token: TOKEN, path: '/admin' },
    },
    {
      // TLS alone here: building a TLS context is what makes validation slow, so only this small
      // config pays for it in every probe.
      frontends: [{ port: 0, tls: { certs: [{ cert: 'a.pem', key: 'a.key' }] } }],
      pools: { web: { backends: [backend('b1')] } },
      replication: { directory: { dir: 'sticky', pollIntervalMs: 1000 } },
    },
  ];
}

// ── Walking the schema and the configs ───────────────────────────────────────────────────────────

/** Property paths the schema describes: `pools.*.backends[].id`, including those inside oneOf/anyOf branches. */
function schemaPaths(node: SchemaNode, path: string, out: Set<string>): Set<string> {
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    const next = path === '' ? key : `${path}.${key}`;
    out.add(next);
    schemaPaths(child, next, out);
  }
  if (typeof node.additionalProperties === 'object') {
    out.add(`${path}.*`);
    schemaPaths(node.additionalProperties, `${path}.*`, out);
  }
  if (node.items !== undefined) schemaPaths(node.items, `${path}[]`, out);
  for (const branch of [...(node.oneOf ?? []), ...(node.anyOf ?? [])]) schemaPaths(branch, path, out);
  return out;
}

/** The schema nodes `value` at `path` is checked against (several under oneOf/anyOf). */
function nodesAt(node: SchemaNode, segments: readonly (string | number)[]): SchemaNode[] {
  const here = [node, ...(node.oneOf ?? []), ...(node.anyOf ?? [])];
  if (segments.length === 0) return here;
  const [head, ...rest] = segments;
  return here.flatMap((n) => {
    if (typeof head === 'number') return n.items === undefined ? [] : nodesAt(n.items, rest);
    const child = n.properties?.[head!] ?? (typeof n.additionalProperties === 'object' ? n.additionalProperties : undefined);
    return child === undefined ? [] : nodesAt(child, rest);
  });
}

/** Every object inside `value` with its segments, and the normalized property paths it uses. */
function walkConfig(value: Json, segments: (string | number)[], objects: (string | number)[][], used: Set<string>): void {
  if (Array.isArray(value)) value.forEach((item, i) => walkConfig(item, [...segments, i], objects, used));
  else if (value !== null && typeof value === 'object') {
    objects.push(segments);
    // What is passed through to Node as given (backendTls) has no keys of its own.
    if (nodesAt(schema, segments).some((n) => n.additionalProperties === true)) return;
    for (const [key, child] of Object.entries(value)) {
      used.add(normalizedPath([...segments, key]));
      walkConfig(child, [...segments, key], objects, used);
    }
  }
}

function normalizedPath(segments: readonly (string | number)[]): string {
  let path = '';
  segments.forEach((s, i) => {
    if (typeof s === 'number') path += '[]';
    else {
      // A map's keys (pool names, metadata, headers) are `*` in the schema.
      const parent = nodesAt(schema, segments.slice(0, i));
      const mapKey = parent.some((n) => typeof n.additionalProperties === 'object' && n.properties?.[s] === undefined);
      path += `${path === '' ? '' : '.'}${mapKey ? '*' : s}`;
    }
  });
  return path;
}

function displayPath(segments: readonly (string | number)[]): string {
  return segments.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

function withKey(config: Json, segments: readonly (string | number)[], key: string, value: Json): Json {
  const copy = JSON.parse(JSON.stringify(config)) as Json;
  let target = copy as Record<string | number, Json>;
  for (const s of segments) target = target[s] as Record<string | number, Json>;
  target[key] = value;
  return copy;
}

describe('schema/fulcrum.schema.json and the validator', () => {
  it('accept the full configs, which use every property the schema describes', () => {
    const used = new Set<string>();
    for (const config of fullConfigs()) {
      walkConfig(config, [], [], used);
      expect(validatorVerdict(config)).toEqual({ ok: true });
      expect(schemaAccepts(config), JSON.stringify(schemaAccepts.errors)).toBe(true);
    }
    const described = schemaPaths(schema, '', new Set());
    expect([...described].filter((p) => !used.has(p))).toEqual([]);
    // And nothing the configs use is unknown to the schema (ajv accepting them says so too).
    expect([...used].filter((p) => !described.has(p))).toEqual([]);
  });

  it('both refuse an unknown key at every object of the full configs, and know the same keys', () => {
    const drift: string[] = [];
    for (const config of fullConfigs()) {
      const objects: (string | number)[][] = [];
      walkConfig(config, [], objects, new Set());
      for (const segments of objects) {
        const nodes = nodesAt(schema, segments);
        // Maps (pool names, metadata, headers) and objects passed through to Node (backendTls) take any key by design.
        if (nodes.some((n) => typeof n.additionalProperties === 'object' || n.additionalProperties === true)) continue;
        const where = displayPath(segments) || '(top)';
        const probe = withKey(config, segments, 'notAKey', 1);
        const verdict = validatorVerdict(probe);
        const expectedPath = segments.length === 0 ? 'notAKey' : `${displayPath(segments)}.notAKey`;
        // Refused naming the key, or the object (a union such as rateLimit.by names the whole value).
        if (verdict.ok || (verdict.error.path !== expectedPath && verdict.error.path !== displayPath(segments)))
          drift.push(`${where}: the validator ${verdict.ok ? 'accepts' : `says ${verdict.error.message}`} for an unknown key`);
        if (schemaAccepts(probe)) drift.push(`${where}: the schema accepts an unknown key`);
        const known = verdict.ok ? undefined : /\(known: ([^)]*)\)/.exec(verdict.error.message)?.[1];
        if (known !== undefined) {
          const validatorKeys = known
            .split(', ')
            .filter((key) => !API_ONLY_KEYS.has(key))
            .sort();
          const schemaKeys = [...new Set(nodes.flatMap((n) => Object.keys(n.properties ?? {})))].sort();
          if (JSON.stringify(validatorKeys) !== JSON.stringify(schemaKeys))
            drift.push(`${where}: the validator knows ${validatorKeys.join(',')}, the schema ${schemaKeys.join(',')}`);
        }
      }
    }
    expect(drift).toEqual([]);
    // ~80 full validations (each derives the cookie keys): generous for a machine shared with others.
  }, 120_000);

  it('never has the validator accept a config the schema refuses (property)', () => {
    const configs = fullConfigs();
    const odd = fc.oneof(
      fc.constantFrom<Json>(-1, 0, 0.5, 1, 65_535, 65_536, 1e7, 1e7 + 1, 3_600_001, '', 'x', true, false, null, [], {}),
      fc.integer({ min: -10, max: 100_000 }),
      fc.string({ maxLength: 8 }),
    );
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(fc.nat({ max: configs.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.boolean(), odd), { minLength: 1, maxLength: 3 }), (which, edits) => {
        const config = JSON.parse(JSON.stringify(configs[which]!)) as Json;
        for (const [pick, drop, value] of edits) {
          // Choose a leaf or an object member of the current config.
          const members: [Record<string | number, Json>, string | number][] = [];
          const collect = (node: Json): void => {
            if (Array.isArray(node)) {
              node.forEach((item, i) => {
                members.push([node as unknown as Record<number, Json>, i]);
                collect(item);
              });
            } else if (node !== null && typeof node === 'object') {
              for (const [k, v] of Object.entries(node)) {
                members.push([node, k]);
                collect(v);
              }
            }
          };
          collect(config);
          const [holder, key] = members[pick % members.length]!;
          if (drop && !Array.isArray(holder)) delete holder[key];
          else holder[key] = value;
        }
        const verdict = validatorVerdict(config);
        if (verdict.ok) {
          accepted++;
          if (!schemaAccepts(config))
            throw new Error(`the validator accepts what the schema refuses: ${JSON.stringify(schemaAccepts.errors)}\n${JSON.stringify(config)}`);
        } else refused++;
      }),
      { seed: 2101, numRuns: 100 },
    );
    // Both outcomes must occur, or the property says nothing.
    expect(accepted).toBeGreaterThan(10);
    expect(refused).toBeGreaterThan(10);
  }, 120_000);
});
