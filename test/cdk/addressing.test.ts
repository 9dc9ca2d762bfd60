import { Token } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { formatIpv4, parseCidr, parseIpv4, planAddresses } from '../../lib/addressing';

describe('IPv4 parsing', () => {
  it('round-trips addresses and rejects malformed ones', () => {
    expect(formatIpv4(parseIpv4('10.0.0.30') ?? -1)).toBe('10.0.0.30');
    expect(formatIpv4(parseIpv4('255.255.255.255') ?? -1)).toBe('255.255.255.255');
    for (const bad of ['10.0.0', '10.0.0.256', '10.0.0.01', 'a.b.c.d', '1.2.3.4.5', '']) {
      expect(parseIpv4(bad), bad).toBeUndefined();
    }
  });

  it('parses aligned CIDRs only', () => {
    expect(parseCidr('10.0.0.0/24')).toEqual({
      base: parseIpv4('10.0.0.0'),
      prefix: 24,
      size: 256,
    });
    for (const bad of ['10.0.0.1/24', '10.0.0.0/33', '10.0.0.0', '10.0.0.0/2/4', '10.0.0.0/x']) {
      expect(parseCidr(bad), bad).toBeUndefined();
    }
  });
});

describe('planAddresses', () => {
  it('places the nodes and the VIP deterministically in the reserved /28 (same-subnet)', () => {
    expect(
      planAddresses({ mode: 'same-subnet', subnetCidrs: ['10.0.0.0/24'], blockOffset: 16 }),
    ).toEqual({
      reservedBlocks: ['10.0.0.16/28'],
      primaryIp: '10.0.0.20',
      secondaryIp: '10.0.0.21',
      vip: '10.0.0.30',
    });
  });

  it('gives each node its own subnet and no VIP (cross-az)', () => {
    expect(
      planAddresses({
        mode: 'cross-az',
        subnetCidrs: ['10.0.0.0/24', '10.0.1.0/24'],
        blockOffset: 16,
      }),
    ).toEqual({
      reservedBlocks: ['10.0.0.16/28', '10.0.1.16/28'],
      primaryIp: '10.0.0.20',
      secondaryIp: '10.0.1.21',
      vip: undefined,
    });
  });

  it('accepts the smallest subnet that fits the block (/26), and the last block before the broadcast', () => {
    expect(
      planAddresses({ mode: 'same-subnet', subnetCidrs: ['10.0.0.64/26'], blockOffset: 32 }).vip,
    ).toBe('10.0.0.110');
    expect(() =>
      planAddresses({ mode: 'same-subnet', subnetCidrs: ['10.0.0.64/26'], blockOffset: 48 }),
    ).toThrow(/too small/);
  });

  it.each([
    [
      { subnetCidrs: ['10.0.0.0/24', '10.0.1.0/24'] },
      /same-subnet mode places the pair in 1 subnet/,
    ],
    [
      { subnetCidrs: ['10.0.0.0/24'], mode: 'cross-az' as const },
      /cross-az mode places the pair in 2 subnet/,
    ],
    [{ subnetCidrs: [Token.asString({ Ref: 'Cidr' })] }, /must be known at synth time/],
    [{ subnetCidrs: ['10.0.0.1/24'] }, /not an IPv4 CIDR/],
    [{ subnetCidrs: ['10.0.0.0/24'], blockOffset: 0 }, /at least 16/],
    [
      { subnetCidrs: ['10.0.0.0/24'], vip: '10.0.0.0' },
      /not in the pair's reserved block|reserves/,
    ],
    [{ subnetCidrs: ['10.0.0.16/28'] }, /too small/],
  ])('rejects %j', (input, message) => {
    expect(() => planAddresses({ mode: 'same-subnet', blockOffset: 16, ...input })).toThrow(
      message,
    );
  });

  it('rejects a VIP that AWS reserves in the subnet', () => {
    expect(() =>
      planAddresses({
        mode: 'same-subnet',
        subnetCidrs: ['10.0.0.0/24'],
        blockOffset: 16,
        vip: '10.0.0.255',
      }),
    ).toThrow(/addresses AWS reserves/);
  });
});
