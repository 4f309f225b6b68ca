// The example's one import of Fulcrum. After `pnpm install` the workspace package resolves by name;
// in a checkout where the example's dependencies are not linked yet, the built package next door
// (`packages/http/dist`, made by `pnpm build`) is used instead.
export const { createBalancedDispatcher, healthEndpoint, httpProbe } = await import('@fulcrum/http').catch((error) => {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  return import('../../packages/http/dist/index.js');
});
