import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src';

describe('examples/three-backends/fulcrum.json', () => {
  it('is a valid config of three backends with cookie stickiness, health checks and stats', async () => {
    const file = fileURLToPath(new URL('../../../examples/three-backends/fulcrum.json', import.meta.url));
    const config = await loadConfig(file, { env: { FULCRUM_COOKIE_SECRET: 'k7Qz2pLm9Xv4Rt8Wn3Yb6Hc1Jd5Fg0Se-AaBbCcDd' } });
    const web = config.pools.get('web')!;
    expect(web.backends.map((b) => b.address)).toEqual(['http://127.0.0.1:3001', 'http://127.0.0.1:3002', 'http://127.0.0.1:3003']);
    expect(web.stickiness?.cookie?.secrets).toEqual(['k7Qz2pLm9Xv4Rt8Wn3Yb6Hc1Jd5Fg0Se-AaBbCcDd']);
    expect(config.stats?.path).toBe('/fulcrum');
  });
});
