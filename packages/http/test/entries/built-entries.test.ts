// The subpath entries of the BUILT packages (dist/, as published; `pnpm test` builds first): each
// entry of @fulcrum/http and @fulcrum/core exports the main entry's very objects — one shared chunk,
// not a copy — in ESM and in CJS, so `instanceof` holds whichever entry made the object. Vitest maps
// every entry to src/, where this holds trivially; only the built files can show a second copy.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

type Module = Record<string, unknown>;
type Target = { import: { default: string }; require: { default: string } };

const packageDir = (name: string) => fileURLToPath(new URL(`../../../${name}/`, import.meta.url));
const require = createRequire(import.meta.url);

function entries(name: string): { subpath: string; esm: string; cjs: string }[] {
  const manifest = JSON.parse(readFileSync(`${packageDir(name)}package.json`, 'utf8')) as { exports: Record<string, Target | string> };
  return Object.entries(manifest.exports).flatMap(([subpath, target]) => {
    if (typeof target === 'string') return [];
    const esm = `${packageDir(name)}${target.import.default.slice(2)}`;
    const cjs = `${packageDir(name)}${target.require.default.slice(2)}`;
    if (!existsSync(esm) || !existsSync(cjs)) throw new Error(`${name}${subpath.slice(1)} is not built (${esm}): run pnpm build`);
    return [{ subpath, esm, cjs }];
  });
}

const loaders = {
  ESM: async (file: string) => (await import(pathToFileURL(file).href)) as Module,
  CJS: async (file: string) => require(file) as Module,
};

describe.each(['ESM', 'CJS'] as const)('the built entries (%s)', (format) => {
  const load = loaders[format];

  it.each(['core', 'http'])('@fulcrum/%s: every subpath entry exports the main entry’s objects, not copies', async (name) => {
    const all = entries(name);
    const main = await load(all.find((e) => e.subpath === '.')!.esm.replace(/\.js$/, format === 'ESM' ? '.js' : '.cjs'));
    const subs = all.filter((e) => e.subpath !== '.');
    expect(subs.length).toBeGreaterThan(1);
    let shared = 0;
    for (const entry of subs) {
      const mod = await load(format === 'ESM' ? entry.esm : entry.cjs);
      expect(Object.keys(mod).length, entry.subpath).toBeGreaterThan(0);
      for (const key of Object.keys(mod)) {
        if (!(key in main)) continue;
        shared += 1;
        expect(mod[key], `${name}${entry.subpath.slice(1)}: ${key}`).toBe(main[key]);
      }
    }
    // http's entries re-export parts of the main entry; core's subpaths hold what the main entry does not.
    if (name === 'http') expect(shared).toBeGreaterThan(10);
  });

  it('makes objects in one entry that are instances of the classes of another', async () => {
    const ext = format === 'ESM' ? '.js' : '.cjs';
    const http = await load(`${packageDir('http')}dist/index${ext}`);
    const dispatcherEntry = await load(`${packageDir('http')}dist/dispatcher/index${ext}`);
    const proxyEntry = await load(`${packageDir('http')}dist/proxy/index${ext}`);
    const core = await load(`${packageDir('core')}dist/index${ext}`);
    const validate = await load(`${packageDir('core')}dist/validate/index${ext}`);

    const createBalancedDispatcher = dispatcherEntry.createBalancedDispatcher as (options: unknown) => { close(): Promise<void> };
    const dispatcher = createBalancedDispatcher({ balancer: { backends: [{ id: 'a', address: 'http://127.0.0.1:1' }] } });
    expect(dispatcher).toBeInstanceOf(http.BalancedDispatcher as new () => unknown);
    await dispatcher.close();

    const thrown = (run: () => unknown): unknown => {
      try {
        run();
      } catch (error) {
        return error;
      }
      throw new Error('did not throw');
    };
    // (Under vitest, an ESM file's `@fulcrum/core` resolves to core's src/; so the proxy's error is
    // compared with the class @fulcrum/http itself exports, and core's entries with core's.)
    expect(thrown(() => (proxyEntry.createProxy as (o: unknown) => unknown)({}))).toBeInstanceOf(http.InvalidOptionError as new () => unknown);
    expect(proxyEntry.InvalidOptionError).toBe(http.InvalidOptionError);
    const InvalidOptionError = core.InvalidOptionError as new () => unknown;
    expect(thrown(() => (validate.finiteNumber as (p: string, v: unknown) => number)('x', Number.NaN))).toBeInstanceOf(InvalidOptionError);
    const testing = await load(`${packageDir('core')}dist/testing/index${ext}`);
    const [backend] = (testing.createBackends as (specs: unknown[]) => unknown[])([{ id: 'a', address: 'http://127.0.0.1:1' }]);
    expect(backend).toBeInstanceOf(core.Backend as new () => unknown);
  });

  it('gives a client-side user of @fulcrum/http/dispatcher its five values (and five types), not the whole package', async () => {
    const ext = format === 'ESM' ? '.js' : '.cjs';
    const dispatcherEntry = await load(`${packageDir('http')}dist/dispatcher/index${ext}`);
    const http = await load(`${packageDir('http')}dist/index${ext}`);
    expect(
      Object.keys(dispatcherEntry)
        .filter((k) => k !== 'default' && k !== '__esModule')
        .sort(),
    ).toEqual(['BalancedDispatcher', 'DEFAULT_KEY_HEADER', 'OriginRouter', 'createBalancedDispatcher', 'routeByOrigin']);
    expect(Object.keys(http).length).toBeGreaterThan(50);
  });
});
