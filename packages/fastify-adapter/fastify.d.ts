// The one declaration of `fastify.fulcrum`, shared by the ESM (index.d.ts) and CJS (index.d.cts)
// type entries. Each entry used to carry its own `declare module 'fastify'` with its own copy of
// FulcrumDecoration, and a project that loaded both (ESM code beside CJS code) got TS2717: two
// declarations of `FastifyInstance.fulcrum` with different types. Both entries reference this file
// (`/// <reference path="../fastify.d.ts" />`, added by tsup.config.ts for a root `.d.ts` in `files`),
// so TypeScript sees the augmentation once. It is an ES module: its imports resolve as `import`.
import type { LoadBalancer } from '@fulcrum/core';
import type { ProxyHandler } from '@fulcrum/http';

/** What the plugin decorates `fastify.fulcrum` with. */
export interface FulcrumDecoration {
  /** The load balancer of the pool (drain, add, snapshot, events). */
  readonly lb: LoadBalancer;
  /** The underlying `createProxy` handler (e.g. `fastify.server.on('upgrade', fastify.fulcrum.proxy.upgrade)`). */
  readonly proxy: ProxyHandler;
}

declare module 'fastify' {
  interface FastifyInstance {
    fulcrum: FulcrumDecoration;
  }
}
