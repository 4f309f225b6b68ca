/**
 * HTTP/2 on a raw-engine listener (`createProxyServer`, the CLI's frontends): each stream is routed
 * by the listener's own dispatch (the same one its HTTP/1.1 requests take) and forwarded by a
 * `StreamExchange`. A stream the dispatch would hand to a `node:http` server (the CLI's stats and
 * admin pages are HTTP/1.1-only) is answered 404.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { RawListener, RawListenerOptions } from '../engine/listener';
import type { RequestView } from '../engine/request-view';
import { Http2ClientStream } from './client-side';
import { Http2Frontend } from './frontend';
import type { NormalizedHttp2Options } from './options';
import { frontendStatsOf } from './stats';
import { forwardStream, streamView } from './stream-exchange';

export function attachHttp2(listener: RawListener, limits: NormalizedHttp2Options, options: RawListenerOptions): Http2Frontend {
  return new Http2Frontend(
    limits,
    (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      const client = new Http2ClientStream(stream, headers);
      const target = listener.route(streamView(client) as unknown as RequestView);
      if (target === undefined || target === 'hand-off') {
        if (!stream.destroyed) {
          stream.respond({ ':status': target === undefined ? 500 : 404, 'content-type': 'text/plain; charset=utf-8' });
          stream.end(target === undefined ? 'Internal Server Error\n' : 'Not Found\n');
        }
        return;
      }
      forwardStream(target.engine, client, target.route ?? null, target.onEnd);
    },
    (error) => options.report(error),
    frontendStatsOf(listener),
  );
}
