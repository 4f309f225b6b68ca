/**
 * HTTP/2 on a raw-engine listener (`createProxyServer`, the CLI's frontends): each stream is routed
 * by the listener's own dispatch (the same one its HTTP/1.1 requests take) and forwarded by a
 * `StreamExchange`. A stream the dispatch hands off (the CLI's stats page, metrics and admin API,
 * which its HTTP/1.1 requests reach through the listener's `fallback` `node:http` server) goes to
 * that same server's request handler as a `node:http2` compatibility request/response pair, so
 * those pages answer over HTTP/2 as they do over HTTP/1.1. Without a fallback it is answered 404.
 */
import type { Server as HttpServer } from 'node:http';
import http2, { type Http2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { RawListener, RawListenerOptions } from '../engine/listener';
import type { RequestView } from '../engine/request-view';
import { Http2ClientStream } from './client-side';
import { Http2Frontend } from './frontend';
import type { NormalizedHttp2Options } from './options';
import { frontendStatsOf } from './stats';
import { forwardStream, streamView } from './stream-exchange';

export function attachHttp2(listener: RawListener, limits: NormalizedHttp2Options, options: RawListenerOptions): Http2Frontend {
  let pages: Http2Server | undefined;
  return new Http2Frontend(
    limits,
    (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
      const client = new Http2ClientStream(stream, headers);
      const view = streamView(client);
      const target = listener.route(view as unknown as RequestView);
      if (target === 'hand-off' && options.fallback !== undefined) {
        pages ??= compatibilityServer(options.fallback);
        // `node:http2`'s compatibility layer makes the request/response pair of the stream and
        // emits 'request' (it answers CONNECT and unmet expectations itself, as on any server).
        pages.emit('stream', stream, headers, flags, rawHeaders);
        return;
      }
      if (target === undefined || target === 'hand-off') {
        if (!stream.destroyed) {
          stream.respond({ ':status': target === undefined ? 500 : 404, 'content-type': 'text/plain; charset=utf-8' });
          stream.end(target === undefined ? 'Internal Server Error\n' : 'Not Found\n');
        }
        return;
      }
      forwardStream(target.engine, client, target.route ?? null, target.onEnd, view);
    },
    (error) => options.report(error),
    frontendStatsOf(listener),
  );
}

/**
 * A `node:http2` server that never listens: its 'request' handler is `fallback`'s. Streams of the
 * listener's own sessions are emitted on it one by one, as the listener hands them off.
 */
function compatibilityServer(fallback: HttpServer): Http2Server {
  const server = http2.createServer();
  server.on('request', (req, res) => fallback.emit('request', req, res));
  return server;
}
