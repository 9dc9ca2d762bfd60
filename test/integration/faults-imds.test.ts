import { describe, expect, it } from 'vitest';
import {
  eip,
  localIpv4s,
  logLines,
  mutations,
  type Pair,
  runAgent,
  useBundleSuite,
} from '../support/bundle.js';
import type { StubFault } from '../support/imds-stub.js';

/**
 * IMDS faults against the built agent. IMDS is read first (who am I), so most of these must stop
 * the takeover before any EC2 call; the ones that strike during verification leave the move done
 * and the next run a no-op.
 */
const suite = useBundleSuite('eip-failover-imds-');
const env = suite.env;

const VIP = '10.0.0.50';

async function pair(): Promise<Pair> {
  const p = await suite.pair('same-subnet');
  await env.emulator.resetLog();
  return p;
}

async function expectHeld(p: Pair): Promise<void> {
  expect(await eip(env, p.world)).toMatchObject({
    eni: p.primary.world.networkInterfaceId,
    ip: VIP,
  });
  expect(await localIpv4s(env.ec2, p.primary.world.networkInterfaceId)).toContain(VIP);
}

async function lastOutcome(p: Pair): Promise<string | undefined> {
  return (await logLines(p.primary)).filter((l) => typeof l.outcome === 'string').at(-1)?.msg;
}

describe('IMDS faults that still allow a verified takeover', () => {
  it('the session token expires mid-run (401): one fresh token, and the run goes on', async () => {
    const p = await pair();
    // Identity takes 7 GETs; the 8th (local-ipv4s, during verification) meets an expired token.
    p.primary.imds.setFault({ kind: 'expire', afterGets: 7 });
    const run = await runAgent(env, p.primary, ['takeover']);
    expect(run.code, run.stderr).toBe(0);
    expect(await lastOutcome(p)).toBe('takeover verified');
    await expectHeld(p);
    const requests = p.primary.imds.requests;
    expect(requests.filter((r) => r.status === 401)).toHaveLength(1);
    expect(requests.filter((r) => r.method === 'PUT')).toHaveLength(2);
  });

  it('IMDS slow but inside the 1 s timeout', async () => {
    const p = await pair();
    p.primary.imds.setFault({ kind: 'delay', ms: 300 });
    const run = await runAgent(env, p.primary, ['takeover']);
    expect(run.code, run.stderr).toBe(0);
    expect(await lastOutcome(p)).toBe('takeover verified');
    await expectHeld(p);
  });
});

describe('IMDS faults before any EC2 call: exit 1, one line, EC2 untouched', () => {
  const cases: { name: string; fault?: StubFault; down?: boolean; stderr: RegExp }[] = [
    {
      name: 'slower than the 1 s timeout',
      fault: { kind: 'delay', ms: 1_500 },
      stderr:
        /IMDS unreachable at http:\/\/127\.0\.0\.1:\d+ \(ETIMEDOUT\); check that the metadata service is enabled/,
    },
    {
      name: 'down (connection refused)',
      down: true,
      stderr: /IMDS unreachable at http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\)/,
    },
    {
      name: 'every answer 401, even to the token request',
      fault: { kind: 'status', status: 401 },
      stderr: /IMDS at http:\/\/127\.0\.0\.1:\d+ answered 401 to the IMDSv2 token request/,
    },
    {
      name: 'garbage bodies',
      fault: { kind: 'body', body: '\u0000\u00ff<html>oops</html>' },
      stderr: /IMDS returned an unexpected (instance-id|placement\/availability-zone|mac)/,
    },
    {
      name: 'an oversized body (over 64 KiB)',
      fault: { kind: 'body', body: 'i-0123456789abcdef0\n'.repeat(4_000) },
      stderr: /exceeds 65536 bytes/,
    },
    {
      name: 'instance-profile credentials that are not JSON',
      fault: {
        kind: 'body',
        body: '{"Code":"Success", truncated',
        path: 'security-credentials/pair-node-role',
      },
      stderr: /IMDS returned credentials for role pair-node-role that are not JSON/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const p = await pair();
      if (c.fault) p.primary.imds.setFault(c.fault);
      const extra: Record<string, string> = c.down
        ? { AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:9' }
        : {};
      // The credentials case reads them from the instance profile, as on an instance.
      if (c.fault?.kind === 'body' && c.fault.path) {
        extra.AWS_ACCESS_KEY_ID = '';
        extra.AWS_SECRET_ACCESS_KEY = '';
      }
      const run = await runAgent(env, p.primary, ['takeover'], extra);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(
        new RegExp(`^eip-failover: takeover failed: .*${c.stderr.source}`),
      );
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(await lastOutcome(p)).toBe('takeover failed');
      if (c.fault?.kind === 'body' && c.fault.path) {
        // Credentials are needed only for the first EC2 call: none was signed, none applied.
        expect(await mutations(env)).toEqual([]);
      } else {
        expect(await env.emulator.actions()).toEqual([]);
      }
      expect(await eip(env, p.world)).toEqual({});
    });
  }
});

describe('IMDS faults during verification: the move is done, the next run is a no-op', () => {
  it('local-ipv4s answers garbage: exit 1 naming the line; then, IMDS healed, a no-op', async () => {
    const p = await pair();
    p.primary.imds.setFault({ kind: 'body', body: '10.0.0.11\nnot-an-ip\n', path: '/local-ipv4s' });
    const run = await runAgent(env, p.primary, ['takeover']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /IMDS local-ipv4s holds a line that is not an IPv4 address: "not-an-ip"/,
    );
    expect(await mutations(env)).toEqual(['AssignPrivateIpAddresses', 'AssociateAddress']);
    p.primary.imds.setFault(undefined);
    await env.emulator.resetLog();
    const again = await runAgent(env, p.primary, ['takeover']);
    expect(again.code, again.stderr).toBe(0);
    expect(await mutations(env)).toEqual([]);
    await expectHeld(p);
  });
});
