import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ImdsError } from '../../agent/src/errors.js';
import { discoverIdentity, localIpv4s } from '../../agent/src/identity.js';
import { ImdsClient } from '../../agent/src/imds.js';
import { type ImdsStub, instanceMetadata, startImdsStub } from '../support/imds-stub.js';
import { THIS_NODE, VIP } from './harness.js';

let stub: ImdsStub;
let local: string[];

beforeEach(async () => {
  local = [THIS_NODE.primaryPrivateIp];
  stub = await startImdsStub({ metadata: instanceMetadata(THIS_NODE, () => local) });
});
afterEach(async () => {
  await stub.close();
});

const client = (timeoutMs = 300) =>
  new ImdsClient({ endpoint: stub.endpoint, timeoutMs, sleep: async () => {} });
const puts = () => stub.requests.filter((r) => r.method === 'PUT').length;

describe('IMDSv2 client against a loopback stub', () => {
  it('learns the identity with one token for every request', async () => {
    const identity = await discoverIdentity(client(), {});
    expect(identity).toEqual({
      instanceId: THIS_NODE.instanceId,
      region: THIS_NODE.region,
      availabilityZone: THIS_NODE.availabilityZone,
      macAddress: THIS_NODE.macAddress,
      networkInterfaceId: THIS_NODE.networkInterfaceId,
      vpcId: THIS_NODE.vpcId,
      subnetId: THIS_NODE.subnetId,
      subnetCidr: THIS_NODE.subnetCidr,
    });
    expect(puts()).toBe(1);
    expect(stub.requests.filter((r) => r.method === 'GET').every((r) => r.status === 200)).toBe(
      true,
    );
  });

  it('a configured region skips the IMDS lookup', async () => {
    const identity = await discoverIdentity(client(), { region: 'us-east-1' });
    expect(identity.region).toBe('us-east-1');
    expect(stub.requests.some((r) => r.path.endsWith('placement/region'))).toBe(false);
  });

  it('401 on an expired token: fetches one fresh token and retries once', async () => {
    const imds = client();
    await imds.get('instance-id');
    stub.expireTokens();
    expect(await imds.get('instance-id')).toBe(THIS_NODE.instanceId);
    expect(puts()).toBe(2);
    expect(stub.requests.filter((r) => r.status === 401)).toHaveLength(1);
  });

  it('401 again after the refresh is an error, not a loop', async () => {
    const imds = client();
    await imds.get('instance-id');
    stub.setFault({ kind: 'status', status: 401 });
    await expect(imds.get('instance-id')).rejects.toThrow(/answered 401/);
    expect(stub.requests.length).toBeLessThan(8);
  });

  it('never falls back to IMDSv1: a refused token request fails without a tokenless GET', async () => {
    stub.setFault({ kind: 'status', status: 403 });
    await expect(client().get('instance-id')).rejects.toThrow(
      /refused a session token \(403\).*disabled/,
    );
    expect(stub.requests.every((r) => r.method === 'PUT')).toBe(true);
  });

  it('IMDS down: a clear error naming the endpoint and the likely fix', async () => {
    await stub.close();
    const imds = new ImdsClient({ endpoint: stub.endpoint, timeoutMs: 200, sleep: async () => {} });
    const err = await imds.get('instance-id').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImdsError);
    expect((err as Error).message).toMatch(
      /IMDS unreachable at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\).*hop limit/,
    );
  });

  it('a hanging IMDS times out quickly instead of blocking the failover', async () => {
    stub.setFault({ kind: 'hang' });
    const started = Date.now();
    await expect(client(150).get('instance-id')).rejects.toThrow(/ETIMEDOUT/);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('transient 503s are retried', async () => {
    const imds = client();
    await imds.get('instance-id');
    stub.setFault({ kind: 'status', status: 503, count: 2 });
    expect(await imds.get('instance-id')).toBe(THIS_NODE.instanceId);
  });

  it('garbage where an instance id belongs is rejected, not used', async () => {
    const imds = client();
    await imds.get('mac');
    stub.setFault({ kind: 'body', body: '<html>captive portal</html>' });
    await expect(discoverIdentity(imds, {})).rejects.toThrow(/unexpected instance-id/);
  });

  it('an oversized body is cut off with an error', async () => {
    const imds = client();
    await imds.get('mac');
    stub.setFault({ kind: 'body', body: 'x'.repeat(200_000) });
    await expect(imds.get('instance-id')).rejects.toThrow();
  });

  it('local-ipv4s is parsed line by line and compared exactly', async () => {
    local = [THIS_NODE.primaryPrivateIp, '10.0.0.5', VIP];
    const ips = await localIpv4s(client(), THIS_NODE.macAddress);
    expect(ips).toEqual(['10.0.0.11', '10.0.0.5', '10.0.0.50']);
    local = [THIS_NODE.primaryPrivateIp, '10.0.0.500'];
    await expect(localIpv4s(client(), THIS_NODE.macAddress)).rejects.toThrow(/not an IPv4 address/);
  });
});

describe('the ENI on a multi-NIC instance (OS interface → MAC → ENI)', () => {
  const macs: Record<string, Record<string, string>> = {
    '0a:00:00:00:00:a1': { 'interface-id': 'eni-0aaaaaaaaaaaaaaa1', 'device-number': '0' },
    '0a:00:00:00:00:b2': { 'interface-id': 'eni-0ccccccccccccccc3', 'device-number': '1' },
  };
  const twoNics = {
    endpoint: 'memory://imds',
    get: async (path: string) => {
      const fixed: Record<string, string> = {
        'instance-id': THIS_NODE.instanceId,
        'placement/region': THIS_NODE.region,
        'placement/availability-zone': THIS_NODE.availabilityZone,
        mac: '0a:00:00:00:00:a1',
      };
      if (fixed[path] !== undefined) return fixed[path] as string;
      const m = /^network\/interfaces\/macs\/([0-9a-f:]+)\/(.+)$/.exec(path);
      const perMac = m
        ? {
            ...macs[m[1] as string],
            'vpc-id': THIS_NODE.vpcId,
            'subnet-id': THIS_NODE.subnetId,
            'subnet-ipv4-cidr-block': THIS_NODE.subnetCidr,
          }
        : undefined;
      const value =
        m && macs[m[1] as string] ? (perMac as Record<string, string>)[m[2] as string] : undefined;
      if (value === undefined) throw new ImdsError(`no ${path}`, 404);
      return value;
    },
  };

  it('without an interface: the ENI at device index 0', async () => {
    expect((await discoverIdentity(twoNics, {})).networkInterfaceId).toBe('eni-0aaaaaaaaaaaaaaa1');
  });

  it('with an interface: the ENI whose MAC the OS reports for it', async () => {
    const { mkdtemp, mkdir, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const sys = await mkdtemp(join(tmpdir(), 'sysclassnet-'));
    try {
      await mkdir(join(sys, 'ens6'));
      await writeFile(join(sys, 'ens6', 'address'), '0A:00:00:00:00:B2\n');
      const identity = await discoverIdentity(twoNics, { interface: 'ens6', sysClassNet: sys });
      expect(identity).toMatchObject({
        macAddress: '0a:00:00:00:00:b2',
        networkInterfaceId: 'eni-0ccccccccccccccc3',
      });
    } finally {
      await rm(sys, { recursive: true, force: true });
    }
  });
});
