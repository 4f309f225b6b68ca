/**
 * The entries of `createProxy`'s handler into the stream exchange: an HTTP/2 request of a
 * `node:http2` server's compatibility API (`Http2ServerRequest`, whose `stream` is the HTTP/2
 * stream), and an HTTP/1.1 request to a pool whose backends speak HTTP/2.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { RouteDecision } from '../proxy/options';
import type { ProxyEngine } from '../proxy/proxy';
import { Http1ClientStream, Http2ClientStream } from './client-side';
import { forwardStream } from './stream-exchange';

export function forwardHttp2Request(engine: ProxyEngine, req: IncomingMessage, res: ServerResponse): void {
  const request = req as unknown as Http2ServerRequest;
  // The compatibility request already reads the stream's body: the exchange reads it from there.
  forwardStream(engine, new Http2ClientStream(request.stream, request.headers, request, res as unknown as Http2ServerResponse));
}

export function forwardHttp1ToHttp2(engine: ProxyEngine, req: IncomingMessage, res: ServerResponse, route: RouteDecision): void {
  forwardStream(engine, new Http1ClientStream(req, res), route);
}
