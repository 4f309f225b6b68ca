import fc from 'fast-check';
import { decodeHealthCheckRequest, decodeHealthCheckResponse, encodeHealthCheckRequest, encodeHealthCheckResponse } from '@fulcrum/grpc';
import type { ServingStatus } from '@fulcrum/grpc';
import { describe, expect, it } from 'vitest';

describe('the grpc.health.v1 messages, encoded by hand', () => {
  it('match the protobuf encoding byte for byte', () => {
    // protoc --encode=grpc.health.v1.HealthCheckRequest: service: "a.B" → 0a 03 61 2e 42
    expect([...encodeHealthCheckRequest({ service: 'a.B' })]).toEqual([0x0a, 0x03, 0x61, 0x2e, 0x42]);
    // The empty string is proto3's default: nothing on the wire.
    expect(encodeHealthCheckRequest({ service: '' }).length).toBe(0);
    expect([...encodeHealthCheckResponse({ status: 'SERVING' })]).toEqual([0x08, 0x01]);
    expect([...encodeHealthCheckResponse({ status: 'NOT_SERVING' })]).toEqual([0x08, 0x02]);
    expect([...encodeHealthCheckResponse({ status: 'SERVICE_UNKNOWN' })]).toEqual([0x08, 0x03]);
    expect(encodeHealthCheckResponse({ status: 'UNKNOWN' }).length).toBe(0);
    // A 200-byte name needs a two-byte length varint (200 = 0xc8 0x01).
    expect([...encodeHealthCheckRequest({ service: 'x'.repeat(200) }).subarray(0, 3)]).toEqual([0x0a, 0xc8, 0x01]);
  });

  it('round-trip any service name and status', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 300 }),
        fc.constantFrom<ServingStatus>('UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'),
        (service, status) => {
          expect(decodeHealthCheckRequest(encodeHealthCheckRequest({ service }))).toEqual({ service });
          expect(decodeHealthCheckResponse(encodeHealthCheckResponse({ status }))).toEqual({ status });
        },
      ),
      { seed: 1818, numRuns: 300 },
    );
  });

  it('skips fields it does not know, as protobuf requires, and reads an unknown enum value as UNKNOWN', () => {
    // field 2 varint 7, field 3 fixed64, field 4 bytes "zz", field 5 fixed32, then status SERVING.
    const newer = Uint8Array.from([0x10, 0x07, 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x22, 0x02, 0x7a, 0x7a, 0x2d, 1, 2, 3, 4, 0x08, 0x01]);
    expect(decodeHealthCheckResponse(newer)).toEqual({ status: 'SERVING' });
    expect(decodeHealthCheckResponse(Uint8Array.from([0x08, 0x09]))).toEqual({ status: 'UNKNOWN' });
    // The last occurrence of a field wins.
    expect(decodeHealthCheckResponse(Uint8Array.from([0x08, 0x01, 0x08, 0x02]))).toEqual({ status: 'NOT_SERVING' });
  });

  it('throws on malformed input instead of reading past it', () => {
    expect(() => decodeHealthCheckRequest(Uint8Array.from([0x0a, 0x05, 0x61]))).toThrow(/truncated/);
    expect(() => decodeHealthCheckResponse(Uint8Array.from([0x08]))).toThrow(/truncated/);
    expect(() => decodeHealthCheckResponse(Uint8Array.from([0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))).toThrow(/varint/);
    expect(() => decodeHealthCheckResponse(Uint8Array.from([0x0b]))).toThrow(/wire type/);
    expect(() => decodeHealthCheckResponse(Uint8Array.from([0x00, 0x01]))).toThrow(/field number 0/);
    expect(() => decodeHealthCheckResponse(Uint8Array.from([0x19, 1, 2]))).toThrow(/truncated/);
  });
});
