// The public surface of @fulcrum/fastify-adapter. Re-exports only; no logic lives here.
export { fulcrum } from './plugin';
export type { FulcrumDecoration } from './plugin';
export type { FulcrumPluginOptions } from './options';
// The errors this package's README names (options are validated by @fulcrum/http and core).
export { ErrorCodes, FulcrumError, InvalidOptionError, isFulcrumError, isInvalidOptionError } from '@fulcrum/core';
