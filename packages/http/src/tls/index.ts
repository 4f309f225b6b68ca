// TLS termination helpers of @fulcrum/http. Re-exports only; no logic lives here.
export { createTlsContext, tlsOptions } from './context';
export type { TlsCertificate, TlsContext, TlsOptions } from './context';
export { redirectToHttps } from './redirect';
export type { RedirectToHttpsOptions } from './redirect';
