/**
 * The raw engine copies a client's request head to the backend as bytes when every field line is
 * `name: value\r\n` (`requestHeadBytes`), and writes it anew otherwise. A hostile client must gain
 * nothing from the copy: the fields the proxy drops or replaces (Host, hop-by-hop fields, fields
 * named in Connection, its own forwarding fields) are dropped from the copied bytes exactly as from
 * the rewritten text, whatever their order, case or neighbours, and the backend receives the same
 * head either way.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProxyServer, type ProxyServer } from '@fulcrum/http';
import { rawExchange } from './raw';

/** A backend that records each request head exactly as it arrives (the requests here have no body). */
let backend: Server;
const heads: string[] = [];
let proxy: ProxyServer;
let port: number;

beforeAll(async () => {
  backend = createServer((socket) => {
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end !== -1; end = pending.indexOf('\r\n\r\n')) {
        heads.push(pending.slice(0, end + 4));
        pending = pending.slice(end + 4);
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }
    });
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  proxy = createProxyServer({ balancer: { backends: [{ id: 'raw', address: `127.0.0.1:${(backend.address() as AddressInfo).port}` }] } });
  await proxy.listen(0, '127.0.0.1');
  port = proxy.address()!.port;
});

afterAll(async () => {
  await proxy?.close(0);
  await new Promise<void>((resolve) => backend.close(() => resolve()));
});

/** The client's hostile fields, each line spelled with `sep` between name and value. */
function fields(sep: string, connection: string): string {
  return [
    `X-Forwarded-For${sep}6.6.6.6`,
    `Connection${sep}${connection}, X-Forwarded-For, x-secret`,
    `Accept${sep}*/*`,
    `HOST${sep}app.example`,
    `x-secret${sep}drop me`,
    `Proxy-Authorization${sep}Basic abc`,
    `TE${sep}trailers`,
    `Keep-Alive${sep}timeout=99`,
    `X-Latin${sep}caf\xe9`,
    `Forwarded${sep}for=6.6.6.6`,
  ].join('\r\n');
}

describe('a request head copied as bytes', () => {
  it('reaches the backend exactly as the same head written anew, without one field the proxy drops or replaces', async () => {
    heads.length = 0;
    // The first request's lines are copied; the second, pipelined behind it in the same packet,
    // spells the same fields with a tab after the colon, so it is written anew. It also closes the
    // connection (Connection is hop-by-hop: the backend sees the same head).
    const reply = await rawExchange(
      port,
      Buffer.from(`GET /a?b HTTP/1.1\r\n${fields(': ', 'keep-alive')}\r\n\r\nGET /a?b HTTP/1.1\r\n${fields(':\t', 'close')}\r\n\r\n`, 'latin1'),
    );
    expect(reply.closedByServer).toBe(true);
    expect(reply.text.match(/HTTP\/1\.1 200 /g)).toHaveLength(2);
    expect(heads).toHaveLength(2);
    expect(heads[0]).toBe(
      'GET /a?b HTTP/1.1\r\nAccept: */*\r\nX-Latin: caf\xe9\r\nhost: app.example\r\nx-forwarded-for: 127.0.0.1\r\n' +
        'x-forwarded-proto: http\r\nx-forwarded-host: app.example\r\nforwarded: for=127.0.0.1;proto=http;host=app.example\r\n\r\n',
    );
    expect(heads[1]).toBe(heads[0]);
  });
});
