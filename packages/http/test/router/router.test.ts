import { randomBytes } from 'node:crypto';
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLoadBalancer, isInvalidOptionError, type LoadBalancerOptions } from '@fulcrum/core';
import { seededRandom } from '@fulcrum/core/testing';
import { createRouter, type Router, type RouterOptions, type RouteSpec } from '../../src/router';

const SECRET = randomBytes(32);
const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);

function poolOptions(id: string): LoadBalancerOptions {
  return { backends: [{ id, address: `http://127.0.0.1:${id.length + 1000}` }] };
}

const POOLS = { web: poolOptions('web1'), api: poolOptions('api1'), admin: poolOptions('admin1'), blue: poolOptions('blue1'), green: poolOptions('green1') };

/** A request as the router sees it: url, method, headers, and whether it came over TLS. */
function req(url: string, headers: Record<string, string> = {}, method = 'GET', encrypted = false): IncomingMessage {
  const lower: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = v;
  return { url, method, headers: lower, socket: { encrypted } } as unknown as IncomingMessage;
}

const routers: Router[] = [];
function router(routes: RouteSpec[], extra: Partial<RouterOptions> = {}): Router {
  const r = createRouter({ pools: POOLS, routes, now: () => NOW, ...extra });
  routers.push(r);
  return r;
}

afterEach(() => {
  for (const r of routers.splice(0)) r.close();
});

function invalid(fn: () => unknown): { path: string; value: unknown } {
  try {
    fn();
  } catch (error) {
    if (isInvalidOptionError(error)) return { path: error.path, value: error.value };
    throw error;
  }
  throw new Error('expected an InvalidOptionError');
}

describe('createRouter: matching', () => {
  it('picks the first route whose conditions all hold, in order', () => {
    const r = router([{ match: { pathPrefix: '/api', method: 'POST' }, pool: 'admin' }, { match: { pathPrefix: '/api' }, pool: 'api' }, { pool: 'web' }]);
    expect(r.match(req('/api/x', {}, 'POST'))?.pool).toBe('admin');
    expect(r.match(req('/api/x'))).toMatchObject({ pool: 'api', route: 1, path: '/api/x' });
    expect(r.match(req('/other'))).toMatchObject({ pool: 'web', route: 2 });
    expect(r.match(req('/api'))?.lb).toBe(r.pools.get('api'));
  });

  it('matches hosts exactly, case-insensitively, ignoring the port and a trailing dot — never by substring', () => {
    const r = router([{ match: { host: 'example.com' }, pool: 'api' }]);
    expect(r.match(req('/', { host: 'EXAMPLE.com:8443' }))?.pool).toBe('api');
    expect(r.match(req('/', { host: 'example.com.' }))?.pool).toBe('api');
    for (const host of ['evilexample.com', 'example.com.evil.net', 'a.example.com', 'example.co', 'example.com:80:80', 'example.com@evil', '']) {
      expect(r.match(req('/', { host })), host).toBeUndefined();
    }
    expect(r.match(req('/'))).toBeUndefined();
  });

  it('matches *.suffix wildcards at any depth but never the bare suffix', () => {
    const r = router([{ match: { host: '*.example.com' }, pool: 'api' }]);
    expect(r.match(req('/', { host: 'a.example.com' }))?.pool).toBe('api');
    expect(r.match(req('/', { host: 'a.b.Example.com:80' }))?.pool).toBe('api');
    expect(r.match(req('/', { host: 'example.com' }))).toBeUndefined();
    expect(r.match(req('/', { host: 'evilexample.com' }))).toBeUndefined();
    expect(r.match(req('/', { host: '.example.com' }))).toBeUndefined();
  });

  it('matches path prefixes by whole segments', () => {
    const r = router([
      { match: { pathPrefix: '/api' }, pool: 'api' },
      { match: { pathPrefix: '/docs/' }, pool: 'admin' },
    ]);
    expect(r.match(req('/api'))?.pool).toBe('api');
    expect(r.match(req('/api/'))?.pool).toBe('api');
    expect(r.match(req('/api/v1/users?x=1'))?.pool).toBe('api');
    expect(r.match(req('/api?x=1'))?.pool).toBe('api');
    expect(r.match(req('/apix'))).toBeUndefined();
    expect(r.match(req('/ap'))).toBeUndefined();
    expect(r.match(req('/docs/a'))?.pool).toBe('admin');
    expect(r.match(req('/docs/'))?.pool).toBe('admin');
    expect(r.match(req('/docs'))).toBeUndefined();
  });

  it('matches exact paths exactly, case-sensitively', () => {
    const r = router([{ match: { path: '/health' }, pool: 'admin' }]);
    expect(r.match(req('/health?full=1'))?.pool).toBe('admin');
    expect(r.match(req('/health/'))).toBeUndefined();
    expect(r.match(req('/Health'))).toBeUndefined();
  });

  it('matches on the normalised path, so dot segments cannot reach a route they should not', () => {
    const r = router([
      { match: { pathPrefix: '/admin' }, pool: 'admin' },
      { match: { pathPrefix: '/public' }, pool: 'web' },
    ]);
    const m = r.match(req('/public/../admin/users'));
    expect(m).toMatchObject({ pool: 'admin', path: '/admin/users' });
    expect(r.match(req('/public/%2e%2e/admin'))).toMatchObject({ pool: 'admin', path: '/admin' });
    expect(r.match(req('//admin'))?.pool).toBe('admin');
    expect(r.match(req('/public/..;/admin'))).toBeUndefined();
    expect(r.match(req('/public\\..\\admin'))).toBeUndefined();
    // %2F is data, not a separator: this is one segment under neither prefix.
    expect(r.match(req('/public%2F..%2Fadmin'))).toBeUndefined();
  });

  it('routes no path whose encoded /, \\ or ; borders a dot segment, even to a catch-all, unless told to pass them', () => {
    const routes: RouteSpec[] = [{ match: { pathPrefix: '/public' }, pool: 'web' }, { pool: 'api' }];
    const r = router(routes);
    for (const url of ['/public/..%5Cadmin', '/public/..%2Fadmin', '/public/..%3B/admin', '/public/a%2F..%2F..%2Fadmin?x=1']) {
      expect(r.match(req(url)), url).toBeUndefined();
    }
    expect(r.match(req('/public/a%2Fb'))).toMatchObject({ pool: 'web', path: '/public/a%2Fb' });
    const passing = router(routes, { encodedDotSegments: 'pass' });
    expect(passing.match(req('/public/..%5Cadmin'))).toMatchObject({ pool: 'web', path: '/public/..%5Cadmin' });
    expect(passing.match(req('/public/..;/admin'))).toBeUndefined();
    expect(invalid(() => router(routes, { encodedDotSegments: 'allow' as never }))).toEqual({ path: 'encodedDotSegments', value: 'allow' });
  });

  it('matches methods from a list, and header values exactly or by anchored regex', () => {
    const r = router([
      { match: { method: ['put', 'DELETE'] }, pool: 'admin' },
      { match: { header: { name: 'X-Role', value: 'admin' } }, pool: 'admin' },
      { match: { header: { name: 'x-version', regex: /v[0-9]+/g } }, pool: 'api' },
      { match: { header: { name: 'x-beta' } }, pool: 'green' },
      { pool: 'web' },
    ]);
    expect(r.match(req('/', {}, 'DELETE'))?.pool).toBe('admin');
    expect(r.match(req('/', { 'x-role': 'admin' }))?.pool).toBe('admin');
    expect(r.match(req('/', { 'x-role': 'notadmin' }))?.pool).toBe('web');
    expect(r.match(req('/', { 'x-role': 'Admin' }))?.pool).toBe('web');
    expect(r.match(req('/', { 'x-version': 'v12' }))?.pool).toBe('api');
    // Anchored and stateless: the same request matches every time, a longer value never.
    expect(r.match(req('/', { 'x-version': 'v12' }))?.pool).toBe('api');
    expect(r.match(req('/', { 'x-version': 'xv12' }))?.pool).toBe('web');
    expect(r.match(req('/', { 'x-version': 'v12;drop' }))?.pool).toBe('web');
    expect(r.match(req('/', { 'x-beta': '' }))?.pool).toBe('green');
  });

  it('matches cookie presence, not a lookalike name', () => {
    const r = router([{ match: { cookie: 'beta' }, pool: 'green' }, { pool: 'web' }]);
    expect(r.match(req('/', { cookie: 'a=1; beta=yes' }))?.pool).toBe('green');
    expect(r.match(req('/', { cookie: 'betas=1; xbeta=1' }))?.pool).toBe('web');
    expect(r.match(req('/', { cookie: 'beta=' }))?.pool).toBe('web');
  });

  it('rewrites the matched prefix and keeps the query', () => {
    const r = router([
      { match: { pathPrefix: '/api' }, pool: 'api', rewritePrefix: '/' },
      { match: { pathPrefix: '/v1/' }, pool: 'api', rewritePrefix: '/v2' },
      { match: { path: '/old' }, pool: 'web', rewritePrefix: '/new' },
    ]);
    expect(r.match(req('/api/users?id=7'))?.path).toBe('/users?id=7');
    expect(r.match(req('/api?id=7'))?.path).toBe('/?id=7');
    expect(r.match(req('/api/'))?.path).toBe('/');
    expect(r.match(req('/v1/items'))?.path).toBe('/v2/items');
    expect(r.match(req('/old?q'))?.path).toBe('/new?q');
  });

  it('returns undefined when nothing matches, for absolute-form targets, and after close', () => {
    const r = router([{ match: { pathPrefix: '/api' }, pool: 'api' }]);
    expect(r.match(req('/web'))).toBeUndefined();
    expect(r.match(req('http://evil.com/api'))).toBeUndefined();
    r.close();
    expect(r.match(req('/api'))).toBeUndefined();
  });

  it('uses load balancers it is given without closing them, and closes those it created', () => {
    const given = createLoadBalancer(poolOptions('g1'));
    const r = createRouter({ pools: { given, made: poolOptions('m1') }, routes: [{ pool: 'given' }] });
    expect(r.pools.get('given')).toBe(given);
    r.close();
    expect(given.acquire()).toBeDefined();
    expect(r.pools.get('made')!.acquire()).toBeUndefined();
    given.close();
  });
});

describe('createRouter: validation', () => {
  const cookie = { secrets: [SECRET] };
  it.each([
    [{ routes: [{ pool: 'nope' }] }, 'routes[0].pool'],
    [{ routes: [{ pool: 'web' }, { split: [] }] }, 'routes[1].split'],
    [
      {
        routes: [
          { pool: 'web' },
          { pool: 'api' },
          {
            split: [
              { pool: 'blue', weight: 1 },
              { pool: 'green', weight: -1 },
            ],
          },
        ],
      },
      'routes[2].split[1].weight',
    ],
    [
      {
        routes: [
          {
            split: [
              { pool: 'blue', weight: 0 },
              { pool: 'green', weight: 0 },
            ],
          },
        ],
      },
      'routes[0].split',
    ],
    [
      {
        routes: [
          {
            split: [
              { pool: 'blue', weight: 1 },
              { pool: 'blue', weight: 1 },
            ],
          },
        ],
      },
      'routes[0].split[1].pool',
    ],
    [{ routes: [{ split: [{ pool: 'blue', weight: Number.NaN }] }] }, 'routes[0].split[0].weight'],
    [{ routes: [{ match: { pathPrefix: 'api' }, pool: 'api' }] }, 'routes[0].match.pathPrefix'],
    [{ routes: [{ match: { pathPrefix: '/api/../x' }, pool: 'api' }] }, 'routes[0].match.pathPrefix'],
    [{ routes: [{ match: { pathPrefix: '/a%2Fb' }, pool: 'api' }] }, 'routes[0].match.pathPrefix'],
    [{ routes: [{ match: { path: '/a?b' }, pool: 'api' }] }, 'routes[0].match.path'],
    [{ routes: [{ match: { pathPrefix: '/api' }, pool: 'api', rewritePrefix: 'v2' }] }, 'routes[0].rewritePrefix'],
    [{ routes: [{ pool: 'api', rewritePrefix: '/v2' }] }, 'routes[0].rewritePrefix'],
    [{ routes: [{ match: { host: 'exa mple.com' }, pool: 'api' }] }, 'routes[0].match.host'],
    [{ routes: [{ match: { host: 'example.com:80' }, pool: 'api' }] }, 'routes[0].match.host'],
    [{ routes: [{ match: { host: '*example.com' }, pool: 'api' }] }, 'routes[0].match.host'],
    [{ routes: [{ match: { method: [] }, pool: 'api' }] }, 'routes[0].match.method'],
    [{ routes: [{ match: { method: ['GET', 'BAD METHOD'] }, pool: 'api' }] }, 'routes[0].match.method[1]'],
    [{ routes: [{ match: { header: { name: 'x', regex: '(' } }, pool: 'api' }] }, 'routes[0].match.header.regex'],
    [{ routes: [{ match: { header: { name: 'x', value: 'a', regex: 'a' } }, pool: 'api' }] }, 'routes[0].match.header.regex'],
    [{ routes: [{ match: { hots: 'a' }, pool: 'api' }] }, 'routes[0].match.hots'],
    [{ routes: [{ pool: 'api', split: [{ pool: 'blue', weight: 1 }] }] }, 'routes[0]'],
    [{ routes: [{ match: {} }] }, 'routes[0]'],
    [
      {
        routes: [
          { name: 'a', pool: 'api' },
          { name: 'a', pool: 'web' },
        ],
      },
      'routes[1].name',
    ],
    [{ routes: [] }, 'routes'],
    [{ routes: [{ pool: 'api' }], split: { cookie, headerOverride: 'bad header' } }, 'split.headerOverride'],
    [{ routes: [{ pool: 'api' }], split: { cookie: { secrets: ['short'] } } }, 'split.cookie.secrets[0]'],
  ] as const)('refuses %j at %s', (options, path) => {
    const result = invalid(() => createRouter({ pools: POOLS, split: { cookie }, ...(options as unknown as Partial<RouterOptions>) } as RouterOptions));
    expect(result.path).toBe(path);
  });

  it('requires a decision about split stickiness as soon as a route splits', () => {
    expect(invalid(() => createRouter({ pools: POOLS, routes: [{ split: [{ pool: 'blue', weight: 1 }] }] })).path).toBe('split.cookie');
  });

  it('names the pool in errors from a pool’s own options, and leaves no pool it created running', () => {
    const result = invalid(() =>
      createRouter({ pools: { ok: poolOptions('a'), bad: { backends: [{ id: 'x', address: 'nope' }] } }, routes: [{ pool: 'ok' }] }),
    );
    expect(result.path).toBe('pools.bad.backends[0].address');
    expect(invalid(() => createRouter({ pools: { 'bad name': poolOptions('a') }, routes: [{ pool: 'ok' }] })).path).toBe('pools.bad name');
    expect(invalid(() => createRouter({ pools: {}, routes: [{ pool: 'ok' }] })).path).toBe('pools');
  });
});

describe('createRouter: weighted splits', () => {
  const canary: RouteSpec[] = [
    {
      name: 'site',
      split: [
        { pool: 'blue', weight: 90 },
        { pool: 'green', weight: 10 },
      ],
    },
  ];

  it('assigns new clients by weight', () => {
    const r = router(canary, { split: { cookie: false }, random: seededRandom(7) });
    const counts: Record<string, number> = { blue: 0, green: 0 };
    for (let i = 0; i < 10_000; i++) counts[r.match(req('/'))!.pool]!++;
    expect(counts.green! / 10_000).toBeGreaterThan(0.085);
    expect(counts.green! / 10_000).toBeLessThan(0.115);
  });

  it('keeps a client on its pool with a signed cookie, Secure over TLS', () => {
    const r = router(canary, { split: { cookie: { secrets: [SECRET] } }, random: seededRandom(3) });
    const first = r.match(req('/', {}, 'GET', true))!;
    expect(first.setCookie).toMatch(/^fulcrum_pool_site=[A-Za-z0-9_-]+; Max-Age=86400; Path=\/; HttpOnly; SameSite=Lax; Secure$/);
    const cookie = first.setCookie!.split(';')[0]!;
    for (let i = 0; i < 50; i++) {
      const again = r.match(req('/', { cookie }))!;
      expect(again.pool).toBe(first.pool);
      expect(again.setCookie).toBeUndefined();
    }
    expect(r.match(req('/'))!.setCookie).not.toMatch(/Secure/);
  });

  it('ignores forged, tampered and other-route cookies and assigns by weight instead', () => {
    const options = { split: { cookie: { secrets: [SECRET] } }, random: () => 0 } as const;
    const r = router(
      [
        ...canary,
        {
          name: 'other',
          match: { pathPrefix: '/o' },
          split: [
            { pool: 'blue', weight: 1 },
            { pool: 'green', weight: 1 },
          ],
        },
      ],
      options,
    );
    // random() = 0 always assigns blue: a cookie that worked would say green.
    const otherRoute = createRouter({
      pools: POOLS,
      now: () => NOW,
      routes: [{ name: 'other', split: [{ pool: 'green', weight: 1 }] }],
      split: { cookie: { secrets: [SECRET] } },
    });
    const greenForOther = otherRoute.match(req('/'))!.setCookie!.split(';')[0]!.split('=')[1]!;
    otherRoute.close();
    const forgedSecret = createRouter({ pools: POOLS, now: () => NOW, routes: canary, split: { cookie: { secrets: [randomBytes(32)] } }, random: () => 0.99 });
    const greenWrongKey = forgedSecret.match(req('/'))!.setCookie!.split(';')[0]!.split('=')[1]!;
    forgedSecret.close();
    for (const value of ['green', greenForOther, greenWrongKey, `${greenWrongKey.slice(0, -2)}AA`]) {
      const m = r.match(req('/', { cookie: `fulcrum_pool_site=${value}` }))!;
      expect(m.pool, value).toBe('blue');
      expect(m.setCookie).toBeDefined();
    }
  });

  it('changes weights at runtime: new clients follow the ramp, sticky ones stay, weight 0 moves everyone off', () => {
    let draw = 0.5;
    const r = router(canary, { split: { cookie: { secrets: [SECRET] } }, random: () => draw });
    const blueClient = r.match(req('/'))!;
    expect(blueClient.pool).toBe('blue');
    const cookie = blueClient.setCookie!.split(';')[0]!;

    r.setSplit('site', { blue: 10, green: 90 });
    expect(r.splitOf('site')).toEqual({ blue: 10, green: 90 });
    expect(r.match(req('/'))!.pool).toBe('green');
    expect(r.match(req('/', { cookie }))!.pool).toBe('blue');

    r.setSplit(0, [
      { pool: 'blue', weight: 0 },
      { pool: 'green', weight: 1 },
    ]);
    const moved = r.match(req('/', { cookie }))!;
    expect(moved.pool).toBe('green');
    expect(moved.setCookie).toMatch(/^fulcrum_pool_site=/);
    draw = 0;
    expect(r.match(req('/'))!.pool).toBe('green');
  });

  it('refuses invalid runtime weights and keeps the old ones', () => {
    const r = router(canary, { split: { cookie: false } });
    expect(invalid(() => r.setSplit('site', { blue: -1, green: 1 })).path).toBe('weights.blue');
    expect(invalid(() => r.setSplit('site', { blue: 1, purple: 1 })).path).toBe('weights.purple');
    expect(invalid(() => r.setSplit('site', [])).path).toBe('weights');
    expect(invalid(() => r.setSplit('nope', { blue: 1 })).path).toBe('route');
    expect(r.splitOf('site')).toEqual({ blue: 90, green: 10 });
  });

  it('turns a single-pool route into a split at runtime', () => {
    const r = router([{ name: 'site', pool: 'blue' }], { split: { cookie: { secrets: [SECRET] } }, random: () => 0.99 });
    expect(r.splitOf('site')).toBeUndefined();
    r.setSplit('site', { blue: 50, green: 50 });
    const m = r.match(req('/'))!;
    expect(m.pool).toBe('green');
    expect(m.setCookie).toMatch(/^fulcrum_pool_site=/);
  });

  it('lets testers pick a pool of the matched split by header, only when enabled and only within the split', () => {
    const routes: RouteSpec[] = [
      {
        name: 'site',
        split: [
          { pool: 'blue', weight: 1 },
          { pool: 'green', weight: 0 },
        ],
      },
    ];
    const enabled = router(routes, { split: { cookie: { secrets: [SECRET] }, headerOverride: 'x-fulcrum-pool' }, random: () => 0 });
    const tester = enabled.match(req('/', { 'x-fulcrum-pool': 'green' }))!;
    expect(tester.pool).toBe('green');
    expect(tester.setCookie).toBeUndefined();
    expect(enabled.match(req('/', { 'x-fulcrum-pool': 'admin' }))!.pool).toBe('blue');
    expect(enabled.match(req('/', { 'x-fulcrum-pool': 'GREEN' }))!.pool).toBe('blue');
    const disabled = router(routes, { split: { cookie: { secrets: [SECRET] } }, random: () => 0 });
    expect(disabled.match(req('/', { 'x-fulcrum-pool': 'green' }))!.pool).toBe('blue');
  });

  it('reissues the split cookie once it is past half its age', () => {
    let now = NOW;
    const r = router(canary, { split: { cookie: { secrets: [SECRET], maxAgeMs: 60_000 } }, now: () => now, random: () => 0.95 });
    const cookie = r.match(req('/'))!.setCookie!.split(';')[0]!;
    now += 29_000;
    expect(r.match(req('/', { cookie }))!.setCookie).toBeUndefined();
    now += 2_000;
    const refreshed = r.match(req('/', { cookie }))!;
    expect(refreshed.pool).toBe('green');
    expect(refreshed.setCookie).toMatch(/^fulcrum_pool_site=/);
  });
});

describe('createRouter over a real HTTP server', () => {
  it('routes what Node parsed off the wire, including odd targets', async () => {
    const r = router([{ match: { host: 'api.test', pathPrefix: '/v1' }, pool: 'api', rewritePrefix: '/' }, { pool: 'web' }]);
    const server = createServer((incoming, res) => {
      const m = r.match(incoming);
      res.end(m === undefined ? '404' : `${m.pool} ${m.path}`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const get = (path: string, host: string) =>
      new Promise<string>((resolve, reject) => {
        const r2 = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c));
          res.on('end', () => resolve(body));
        });
        r2.on('error', reject);
        r2.end();
      });
    try {
      expect(await get('/v1/users?x=1', 'API.test:8080')).toBe('api /users?x=1');
      expect(await get('/v1/../admin', 'api.test')).toBe('web /admin');
      expect(await get('/v1', 'evilapi.test')).toBe('web /v1');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('createRouter: regular expressions that cannot stall the event loop', () => {
  it.each([
    ['([a-z]+)+', 'nested quantifiers'],
    ['(a*)*b', 'nested quantifiers'],
    ['((x+)y)+', 'nested quantifiers'],
    ['(?:a+b?){2,}', 'nested quantifiers'],
    ['(a|aa)*', 'alternation'],
    ['(a)\\1', 'backreference'],
    ['(?<v>a)\\k<v>', 'backreference'],
  ])('refuses %s at config time with a named error (%s)', (regex, why) => {
    let caught: unknown;
    try {
      createRouter({ pools: POOLS, routes: [{ match: { header: { name: 'x-role', regex } }, pool: 'api' }] });
    } catch (error) {
      caught = error;
    }
    expect(isInvalidOptionError(caught)).toBe(true);
    expect((caught as { path: string }).path).toBe('routes[0].match.header.regex');
    expect((caught as Error).message).toContain(why);
  });

  it('refuses a RegExp object with nested quantifiers too, not only source strings', () => {
    expect(invalid(() => createRouter({ pools: POOLS, routes: [{ match: { header: { name: 'x', regex: /(\w+\s?)+$/ } }, pool: 'api' }] })).path).toBe(
      'routes[0].match.header.regex',
    );
  });

  it.each(['v[0-9]+', '(?:foo|bar)', '(ab)+', '(a+)?b', '\\d+\\.\\d+', '[(+)]+x', 'a{1,3}', '(a{1})*'])('accepts the linear-time shape %s', (regex) => {
    expect(() => router([{ match: { header: { name: 'x', regex } }, pool: 'api' }])).not.toThrow();
  });

  it('does not run a regex on a header value longer than 1024 characters, so a 60 KB value cannot stall matching', () => {
    // Cubic on its input: on 60,000 characters this pattern alone would run for hours.
    const r = router([{ match: { header: { name: 'x-tag', regex: '[a-z]*[a-z]*[a-z]*!' } }, pool: 'api' }, { pool: 'web' }]);
    expect(r.match(req('/', { 'x-tag': `${'a'.repeat(60_000)}?` }))?.pool).toBe('web');
    // At and under the cap the regex is in force.
    expect(r.match(req('/', { 'x-tag': `${'a'.repeat(1023)}!` }))?.pool).toBe('api');
    expect(r.match(req('/', { 'x-tag': `${'a'.repeat(1024)}!` }))?.pool).toBe('web');
  });
});
