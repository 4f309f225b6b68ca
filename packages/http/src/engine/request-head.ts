/**
 * The raw engine's request head to a backend, as bytes copied from the client's: the usual request
 * (no hook, every field line `name: value\r\n`) needs no text built, flattened and
 * encoded — the lines the client sent and the proxy keeps are in the buffer they were parsed from.
 */
import { requestHeadRanges, type ForwardingBytes, type ForwardingContext } from '../proxy/headers';
import type { RequestHead } from './parser';

/** `requestHeadRanges`' ranges, shared: each use is synchronous, between its call and the copy. */
const RANGES: number[] = [];

/**
 * The request head for `path`: the client's request line when the path and the version go
 * unchanged (else a new one), the client's field lines the proxy keeps (`requestHeadRanges`), the
 * proxy's lines (from `cache`), `framing` (the proxy's framing line, or '') and the empty line — the
 * same bytes as `${method} ${path} HTTP/1.1\r\n` + `requestHeadLines` + framing + CRLF, as latin1
 * (property-tested). `undefined` when the client's lines cannot be copied (`head.canonicalFields`
 * false, or a list that is not the one parsed): the caller writes the head as text.
 */
export function requestHeadBytes(
  head: RequestHead,
  path: string,
  framing: string,
  ctx: ForwardingContext,
  backendHost: string,
  cache: ForwardingBytes,
): Buffer | undefined {
  if (!head.canonicalFields) return undefined;
  const ranges = RANGES;
  ranges.length = 0;
  const tail = requestHeadRanges(head.rawHeaders, head.fieldsStart, head.fieldsEnd, ctx, backendHost, cache, ranges);
  if (tail === undefined) return undefined;
  let line: string | undefined;
  if (path === head.target && head.version === 11) {
    // The request line goes as it came: the first range starts there.
    if (ranges.length > 0 && ranges[0] === head.fieldsStart) ranges[0] = head.lineStart;
    else ranges.unshift(head.lineStart, head.fieldsStart);
  } else {
    line = `${head.method} ${path} HTTP/1.1\r\n`;
  }
  let length = (line === undefined ? 0 : line.length) + tail.length + framing.length + 2;
  for (let i = 0; i < ranges.length; i += 2) length += ranges[i + 1]! - ranges[i]!;
  const out = Buffer.allocUnsafe(length);
  const src = head.buffer;
  let at = line === undefined ? 0 : out.write(line, 0, 'latin1');
  for (let i = 0; i < ranges.length; i += 2) at += src.copy(out, at, ranges[i]!, ranges[i + 1]!);
  out.set(tail, at);
  at += tail.length;
  if (framing.length > 0) at += out.write(framing, at, 'latin1');
  out[at] = 13;
  out[at + 1] = 10;
  return out;
}
