/**
 * The URL a backend receives: the route prefix replaced by `rewritePrefix` — @fastify/http-proxy's
 * `prefix`/`rewritePrefix` pair, so `/api/users?x=1` under prefix `/api` reaches the backend as
 * `/users?x=1` by default, or `/v2/users?x=1` with `rewritePrefix: '/v2'`.
 *
 * The prefix is cut from the raw URL as text, never rebuilt from the router's decoded wildcard
 * parameter: a proxy must pass `%2F`, `%20` and friends on exactly as they came. The router has
 * already matched the prefix, so the only differences left are the ones its options allow: letter
 * case (`caseSensitive: false`) and runs of slashes (`ignoreDuplicateSlashes`).
 */

/** Rewrite `url` (raw, path + query) from under `routePrefix` to under `rewritePrefix`. */
export function forwardedUrl(url: string, routePrefix: string, rewritePrefix: string): string {
  let rest = url;
  if (routePrefix !== '') {
    if (startsWithIgnoringCase(url, routePrefix)) rest = url.slice(routePrefix.length);
    else {
      const collapsed = collapseSlashes(url);
      if (startsWithIgnoringCase(collapsed, routePrefix)) rest = collapsed.slice(routePrefix.length);
    }
  }
  const target = rewritePrefix + rest;
  return target.startsWith('/') ? target : `/${target}`;
}

function startsWithIgnoringCase(url: string, prefix: string): boolean {
  return url.length >= prefix.length && url.slice(0, prefix.length).toLowerCase() === prefix.toLowerCase();
}

/** `//api//x?a=//b` → `/api/x?a=//b`: only the path, as find-my-way's `ignoreDuplicateSlashes` does. */
function collapseSlashes(url: string): string {
  const query = url.search(/[?;]/);
  const path = query === -1 ? url : url.slice(0, query);
  return path.replace(/\/{2,}/g, '/') + (query === -1 ? '' : url.slice(query));
}
