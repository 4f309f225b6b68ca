// The public surface of @fulcrum/fastify-adapter. Re-exports only; no logic lives here.
export { fulcrum } from './plugin';
export type { FulcrumDecoration } from './plugin';
export type { FulcrumPluginOptions } from './options';
