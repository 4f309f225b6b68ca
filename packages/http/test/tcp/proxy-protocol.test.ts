import { describe, expect, it } from 'vitest';
import { PROXY_V2_SIGNATURE, proxyHeaderV1, proxyHeaderV2 } from '../../src/tcp';

const v4 = { sourceAddress: '192.0.2.10', sourcePort: 51234, destinationAddress: '10.0.0.1', destinationPort: 3306 };
const v6 = { sourceAddress: '2001:db8::1', sourcePort: 443, destinationAddress: '2001:db8::ff', destinationPort: 6379 };

describe('PROXY protocol headers', () => {
  it('writes v1 lines for IPv4, IPv6, IPv4-mapped and unknown addresses', () => {
    expect(proxyHeaderV1(v4).toString('latin1')).toBe('PROXY TCP4 192.0.2.10 10.0.0.1 51234 3306\r\n');
    expect(proxyHeaderV1(v6).toString('latin1')).toBe('PROXY TCP6 2001:db8::1 2001:db8::ff 443 6379\r\n');
    expect(proxyHeaderV1({ ...v4, sourceAddress: '::ffff:192.0.2.10', destinationAddress: '::ffff:10.0.0.1' }).toString('latin1')).toBe(
      'PROXY TCP4 192.0.2.10 10.0.0.1 51234 3306\r\n',
    );
    expect(proxyHeaderV1({ ...v4, destinationAddress: '2001:db8::ff' }).toString('latin1')).toBe('PROXY TCP6 ::ffff:c000:20a 2001:db8::ff 51234 3306\r\n');
    expect(proxyHeaderV1({ ...v4, sourceAddress: undefined }).toString('latin1')).toBe('PROXY UNKNOWN\r\n');
    expect(proxyHeaderV1({ ...v4, sourcePort: 70000 }).toString('latin1')).toBe('PROXY UNKNOWN\r\n');
  });

  it('writes v2 headers byte for byte for IPv4', () => {
    expect(proxyHeaderV2(v4).toString('hex')).toBe(
      [
        '0d0a0d0a000d0a515549540a', // signature
        '21', // v2, PROXY
        '11', // TCP over IPv4
        '000c', // 12 bytes follow
        'c000020a', // 192.0.2.10
        '0a000001', // 10.0.0.1
        'c822', // 51234
        '0cea', // 3306
      ].join(''),
    );
  });

  it('writes v2 headers byte for byte for IPv6, and AF_UNSPEC when addresses are unknown', () => {
    const header = proxyHeaderV2(v6);
    expect(header.subarray(0, 12).equals(PROXY_V2_SIGNATURE)).toBe(true);
    expect(header.subarray(12).toString('hex')).toBe(
      ['21', '21', '0024', '20010db8000000000000000000000001', '20010db80000000000000000000000ff', '01bb', '18eb'].join(''),
    );
    expect(proxyHeaderV2({ ...v6, destinationAddress: 'garbage' }).toString('hex')).toBe('0d0a0d0a000d0a515549540a' + '21' + '00' + '0000');
  });
});
