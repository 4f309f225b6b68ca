// Cost per rate-limit check: Fulcrum's RateLimiter (stick-table counters, HAProxy's freq_ctr
// estimate) against rate-limiter-flexible's RateLimiterMemory, the package a Node user would pick.
// Both decide "is this key over N requests per window" for 10,000 rotating client keys.
// Needs packages/http/dist built with the CLI/ratelimit exports; rate-limiter-flexible is optional.
import { run, bench, summary } from 'mitata';

const http = await import('../packages/http/dist/index.js');
if (typeof http.RateLimiter !== 'function') {
  console.log('ratelimit: skipped — packages/http/dist has no RateLimiter export yet (build after the lead adds the export lines).');
  process.exit(0);
}
const { RateLimiter } = http;

const KEYS = Array.from({ length: 10_000 }, (_, i) => `ip:10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
// A limit no key reaches, so both sides do the full "count and compare" work on every call.
const fulcrum = new RateLimiter({ requests: 1_000_000_000, windowMs: 10_000 });
const fulcrumConcurrent = new RateLimiter({ requests: 1_000_000_000, concurrent: 1_000_000, windowMs: 10_000 });
let i = 0;

let flexible;
try {
  const { RateLimiterMemory } = await import('rate-limiter-flexible');
  flexible = new RateLimiterMemory({ points: 1_000_000_000, duration: 10 });
} catch {
  console.log('ratelimit: rate-limiter-flexible is not installed (add it to bench/package.json); measuring Fulcrum alone.');
}

summary(() => {
  bench('Fulcrum RateLimiter.check (rate)', () => fulcrum.check(KEYS[i++ % KEYS.length]));
  bench('Fulcrum RateLimiter.check (rate + concurrency, done())', () => {
    const verdict = fulcrumConcurrent.check(KEYS[i++ % KEYS.length]);
    verdict.done?.();
  });
  if (flexible) {
    // consume() returns a promise even for the memory store: its cost is part of a check.
    bench('rate-limiter-flexible RateLimiterMemory.consume', async () => {
      await flexible.consume(KEYS[i++ % KEYS.length]);
    });
  }
});

await run();
await fulcrum.close();
await fulcrumConcurrent.close();
