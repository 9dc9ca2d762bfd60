import 'aws-sdk-client-mock-vitest/extend';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  DescribeAddressesCommand,
} from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { StateStore } from '../../agent/src/state.js';
import {
  ALLOCATION_ID,
  defaultConfig,
  ec2Error,
  PEER,
  THIS_NODE,
  useAgentFixture,
  VIP,
} from './harness.js';

const t = useAgentFixture();

const takeover = (extra: string[] = []) => t.agent(['takeover', ...extra]);

async function readState() {
  return JSON.parse(await readFile(join(t.sandbox.stateDir, 'state.json'), 'utf8'));
}

describe('takeover', () => {
  it('first takeover: assigns the VIP with AllowReassignment, associates with AllowReassociation, verifies', async () => {
    // GIVEN a fresh pair: the EIP unassociated, the VIP on no ENI
    // WHEN this node becomes MASTER
    const result = await takeover();
    // THEN both mutating calls carry the allow flags and the result is verified
    expect(result.code).toBe(0);
    expect(t.world.mock).toHaveReceivedCommandWith(AssignPrivateIpAddressesCommand, {
      NetworkInterfaceId: THIS_NODE.networkInterfaceId,
      PrivateIpAddresses: [VIP],
      AllowReassignment: true,
    });
    expect(t.world.mock).toHaveReceivedCommandWith(AssociateAddressCommand, {
      AllocationId: ALLOCATION_ID,
      NetworkInterfaceId: THIS_NODE.networkInterfaceId,
      PrivateIpAddress: VIP,
      AllowReassociation: true,
    });
    expect(t.world.association).toEqual({ eni: THIS_NODE.networkInterfaceId, ip: VIP });
    const state = await readState();
    expect(state.vrrpState).toBe('MASTER');
    expect(state.lastTakeover.outcome).toBe('verified');
  });

  it('already held: sends no mutating call and reports noop', async () => {
    t.world.ips.set(VIP, THIS_NODE.networkInterfaceId);
    t.world.association = { eni: THIS_NODE.networkInterfaceId, ip: VIP };
    const result = await takeover();
    expect(result.code).toBe(0);
    expect(t.world.mutatingCalls()).toEqual([]);
    expect((await readState()).lastTakeover.outcome).toBe('noop');
  });

  it('EIP on the peer with the VIP: the assignment moves both, so no redundant AssociateAddress', async () => {
    t.world.ips.set(VIP, PEER.networkInterfaceId);
    t.world.association = { eni: PEER.networkInterfaceId, ip: VIP };
    const result = await takeover();
    expect(result.code).toBe(0);
    expect(t.world.mutatingCalls()).toEqual(['AssignPrivateIpAddressesCommand']);
    expect(t.world.association).toEqual({ eni: THIS_NODE.networkInterfaceId, ip: VIP });
  });

  it("EIP on the peer's primary IP: assigns the VIP here, then re-points the EIP", async () => {
    t.world.association = { eni: PEER.networkInterfaceId, ip: PEER.primaryPrivateIp };
    const result = await takeover();
    expect(result.code).toBe(0);
    expect(t.world.mutatingCalls()).toEqual([
      'AssignPrivateIpAddressesCommand',
      'AssociateAddressCommand',
    ]);
    expect(t.world.association).toEqual({ eni: THIS_NODE.networkInterfaceId, ip: VIP });
  });

  it('private IP on the peer, EIP unassociated: moves the IP and associates', async () => {
    t.world.ips.set(VIP, PEER.networkInterfaceId);
    const result = await takeover();
    expect(result.code).toBe(0);
    expect(t.world.ips.get(VIP)).toBe(THIS_NODE.networkInterfaceId);
    expect(t.world.mutatingCalls()).toEqual([
      'AssignPrivateIpAddressesCommand',
      'AssociateAddressCommand',
    ]);
  });

  it('VIP already here but the EIP elsewhere: only AssociateAddress', async () => {
    t.world.ips.set(VIP, THIS_NODE.networkInterfaceId);
    t.world.association = { eni: PEER.networkInterfaceId, ip: PEER.primaryPrivateIp };
    const result = await takeover();
    expect(result.code).toBe(0);
    expect(t.world.mutatingCalls()).toEqual(['AssociateAddressCommand']);
  });

  it('throttled twice, then succeeds: retried with backoff within the deadline', async () => {
    t.world.mock
      .on(AssociateAddressCommand)
      .rejectsOnce(ec2Error('RequestLimitExceeded', 503))
      .rejectsOnce(ec2Error('RequestLimitExceeded', 503))
      .callsFake((input) => {
        t.world.association = { eni: input.NetworkInterfaceId, ip: input.PrivateIpAddress };
        return {};
      });
    const result = await takeover();
    expect(result.code).toBe(0);
    expect(t.world.mock).toHaveReceivedCommandTimes(AssociateAddressCommand, 3);
    const retries = result.logs.filter((l) => l.msg === 'ec2 call will be retried');
    expect(retries).toHaveLength(2);
    expect(retries[0]).toMatchObject({
      action: 'AssociateAddress',
      code: 'RequestLimitExceeded',
      kind: 'throttled',
    });
  });

  it('5xx from EC2 is retried like throttling', async () => {
    t.world.mock
      .on(AssignPrivateIpAddressesCommand)
      .rejectsOnce(ec2Error('InternalError', 500))
      .callsFake((input) => {
        t.world.ips.set(input.PrivateIpAddresses[0], input.NetworkInterfaceId);
        return {};
      });
    const result = await takeover();
    expect(result.code).toBe(0);
    expect(t.world.mock).toHaveReceivedCommandTimes(AssignPrivateIpAddressesCommand, 2);
  });

  it('verification polls while DescribeAddresses still shows the old association, then converges', async () => {
    t.world.association = { eni: PEER.networkInterfaceId, ip: PEER.primaryPrivateIp };
    t.world.lagAfterAssociate(3);
    const result = await takeover();
    expect(result.code).toBe(0);
    const polls = result.logs.filter((l) => l.msg === 'not yet visible; polling');
    expect(polls.length).toBeGreaterThanOrEqual(2);
    expect(result.logs.find((l) => l.msg === 'verified')).toBeDefined();
  });

  it('never converges: exit 1 once the deadline passes, not before and not much after', async () => {
    t.world.association = { eni: PEER.networkInterfaceId, ip: PEER.primaryPrivateIp };
    t.world.lagAfterAssociate(Number.MAX_SAFE_INTEGER);
    const result = await takeover(['--deadline', '10']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/takeover failed: not verified within the 10 s deadline/);
    expect(t.clock.elapsed()).toBeLessThanOrEqual(10_000);
    expect(t.clock.elapsed()).toBeGreaterThan(8_000);
    expect((await readState()).lastTakeover.outcome).toBe('failed');
  });

  it('state flips to BACKUP mid-takeover: exit 3 and no further mutating call', async () => {
    const store = new StateStore(t.sandbox.stateDir, t.clock);
    t.world.onAssign = async () => {
      await store.recordTransition('BACKUP');
    };
    const result = await takeover();
    expect(result.code).toBe(3);
    expect(t.world.mutatingCalls()).toEqual(['AssignPrivateIpAddressesCommand']);
    expect(t.world.mock).not.toHaveReceivedCommand(AssociateAddressCommand);
    expect((await readState()).vrrpState).toBe('BACKUP');
    expect((await readState()).lastTakeover.outcome).toBe('superseded');
  });

  it('UnauthorizedOperation: no retry, one clear line naming the fix', async () => {
    t.world.mock
      .on(AssignPrivateIpAddressesCommand)
      .rejects(ec2Error('UnauthorizedOperation', 403, 'You are not authorized'));
    const result = await takeover();
    expect(result.code).toBe(1);
    expect(t.world.mock).toHaveReceivedCommandTimes(AssignPrivateIpAddressesCommand, 1);
    expect(t.world.mock).not.toHaveReceivedCommand(AssociateAddressCommand);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/UnauthorizedOperation.*instance profile.*eip-failover check/);
  });

  it('InvalidAllocationID.NotFound: no retry, exit 1, message points at the config', async () => {
    t.world.mock
      .on(DescribeAddressesCommand)
      .rejects(ec2Error('InvalidAllocationID.NotFound', 400));
    const result = await takeover();
    expect(result.code).toBe(1);
    expect(t.world.mock).toHaveReceivedCommandTimes(DescribeAddressesCommand, 1);
    expect(result.stderr).toMatch(/InvalidAllocationID\.NotFound.*allocationId and region/);
  });

  it('throttled past the deadline: gives up in time with exit 1', async () => {
    t.world.mock.on(DescribeAddressesCommand).rejects(ec2Error('RequestLimitExceeded', 503));
    const result = await takeover(['--deadline', '5']);
    expect(result.code).toBe(1);
    expect(t.clock.elapsed()).toBeLessThanOrEqual(5_000);
    expect(result.stderr).toMatch(/RequestLimitExceeded/);
  });

  it('a VIP outside this subnet fails with a message pointing at cross-az mode', async () => {
    await t.sandbox.writeConfig(
      defaultConfig(t.sandbox, {
        addresses: [{ allocationId: ALLOCATION_ID, privateIp: '10.0.1.50' }],
      }),
    );
    const result = await takeover();
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /10\.0\.1\.50 is outside this node's subnet 10\.0\.0\.0\/24.*cross-az/,
    );
    expect(t.world.mutatingCalls()).toEqual([]);
  });

  it('cross-AZ mode (no private IP): associates with the primary private IP and assigns nothing', async () => {
    await t.sandbox.writeConfig(
      defaultConfig(t.sandbox, { addresses: [{ allocationId: ALLOCATION_ID }] }),
    );
    t.world.association = { eni: PEER.networkInterfaceId, ip: PEER.primaryPrivateIp };
    const result = await takeover();
    expect(result.code).toBe(0);
    expect(t.world.mock).not.toHaveReceivedCommand(AssignPrivateIpAddressesCommand);
    expect(t.world.mock).toHaveReceivedCommandWith(AssociateAddressCommand, {
      NetworkInterfaceId: THIS_NODE.networkInterfaceId,
      PrivateIpAddress: THIS_NODE.primaryPrivateIp,
      AllowReassociation: true,
    });
  });

  it('--dry-run prints the plan and makes no mutating call or state change', async () => {
    t.world.association = { eni: PEER.networkInterfaceId, ip: VIP };
    t.world.ips.set(VIP, PEER.networkInterfaceId);
    const result = await takeover(['--dry-run']);
    expect(result.code).toBe(0);
    expect(t.world.mutatingCalls()).toEqual([]);
    expect(result.stdout).toMatch(
      /would call AssignPrivateIpAddresses NetworkInterfaceId=eni-0aaaaaaaaaaaaaaa1 PrivateIpAddresses=10\.0\.0\.50 AllowReassignment=true/,
    );
    expect(result.stdout).toMatch(/would call AssociateAddress .*AllowReassociation=true/);
    await expect(readFile(join(t.sandbox.stateDir, 'state.json'))).rejects.toThrow(/ENOENT/);
  });

  it('every log line of a takeover carries one failover id, and steps carry durations', async () => {
    const result = await takeover();
    const ids = new Set(result.logs.map((l) => l.failoverId));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^[0-9a-f-]{36}$/);
    const steps = result.logs.filter((l) => l.msg === 'step done').map((l) => l.step);
    expect(steps).toEqual(
      expect.arrayContaining(['identity', 'lock', 'observe', 'assign', 'verify']),
    );
    for (const line of result.logs.filter((l) => l.msg === 'step done'))
      expect(typeof line.durationMs).toBe('number');
  });
});

describe('IMDS down', () => {
  it('takeover exits 1 with one line naming IMDS and the fix, and sends nothing to EC2', async () => {
    const { ImdsClient } = await import('../../agent/src/imds.js');
    // A loopback port nothing listens on: connection refused, as when IMDS is disabled.
    const imds = new ImdsClient({
      endpoint: 'http://127.0.0.1:9',
      timeoutMs: 200,
      sleep: async () => {},
    });
    const result = await t.agent(['takeover'], { imds });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(
      /takeover failed: IMDS unreachable at http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\).*hop limit/,
    );
    expect(t.world.mock.calls()).toHaveLength(0);
  });
});

describe('release, notify, reconcile', () => {
  it('release records the state and never calls EC2', async () => {
    const result = await t.agent(['release', 'FAULT']);
    expect(result.code).toBe(0);
    expect(t.world.mock.calls()).toHaveLength(0);
    expect((await readState()).vrrpState).toBe('FAULT');
  });

  it('release rejects a state keepalived never sends', async () => {
    const result = await t.agent(['release', 'MASTER']);
    expect(result.code).toBe(2);
  });

  it('notify INSTANCE VI_1 MASTER 150 takes over; BACKUP releases', async () => {
    const master = await t.agent(['notify', 'INSTANCE', 'VI_1', 'MASTER', '150']);
    expect(master.code).toBe(0);
    expect(t.world.association).toEqual({ eni: THIS_NODE.networkInterfaceId, ip: VIP });
    t.world.mock.resetHistory();
    const backup = await t.agent(['notify', 'INSTANCE', 'VI_1', 'BACKUP', '100']);
    expect(backup.code).toBe(0);
    expect(t.world.mock.calls()).toHaveLength(0);
    expect((await readState()).vrrpState).toBe('BACKUP');
  });

  it('notify with arguments keepalived never sends exits 2', async () => {
    const result = await t.agent(['notify', 'INSTANCE', 'VI_1', 'LEADER']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/notify expects TYPE NAME STATE/);
  });

  it('reconcile on a BACKUP node does nothing', async () => {
    await new StateStore(t.sandbox.stateDir, t.clock).recordTransition('BACKUP');
    const result = await t.agent(['reconcile']);
    expect(result.code).toBe(0);
    expect(t.world.mock.calls()).toHaveLength(0);
  });

  it('reconcile on a MASTER that lost the EIP (a manual move) takes it back', async () => {
    await takeover();
    t.world.association = { eni: PEER.networkInterfaceId, ip: PEER.primaryPrivateIp };
    t.world.mock.resetHistory();
    const result = await t.agent(['reconcile']);
    expect(result.code).toBe(0);
    expect(t.world.mutatingCalls()).toEqual(['AssociateAddressCommand']);
    expect((await readState()).lastTakeover).toMatchObject({
      command: 'reconcile',
      outcome: 'verified',
    });
  });

  it('reconcile on a MASTER that holds everything sends no mutating call and keeps the last takeover record', async () => {
    await takeover();
    const before = (await readState()).lastTakeover;
    t.world.mock.resetHistory();
    const result = await t.agent(['reconcile']);
    expect(result.code).toBe(0);
    expect(t.world.mutatingCalls()).toEqual([]);
    expect((await readState()).lastTakeover).toEqual(before);
  });
});

describe('stale transitions (hooks that reach the state dir out of keepalived order)', () => {
  const boot = 'b00t-1d';
  it('a MASTER hook forked before an already recorded BACKUP hook does not act', async () => {
    // GIVEN keepalived went MASTER then BACKUP, and the BACKUP hook (forked later) recorded first
    const backup = await t.agent(['release', 'BACKUP'], {
      origin: { bootId: boot, startTicks: 200 },
    });
    expect(backup.code).toBe(0);
    // WHEN the earlier MASTER hook arrives
    const master = await t.agent(['takeover'], { origin: { bootId: boot, startTicks: 150 } });
    // THEN it is superseded without any EC2 call, and the state stays BACKUP
    expect(master.code).toBe(3);
    expect(t.world.mock.calls()).toHaveLength(0);
    expect((await readState()).vrrpState).toBe('BACKUP');
  });

  it('a stale BACKUP hook does not overwrite a later MASTER', async () => {
    await t.agent(['takeover'], { origin: { bootId: boot, startTicks: 300 } });
    const stale = await t.agent(['release'], { origin: { bootId: boot, startTicks: 299 } });
    expect(stale.code).toBe(0);
    expect(
      stale.logs.some((l) => l.msg === 'stale transition: a later one is already recorded'),
    ).toBe(true);
    expect((await readState()).vrrpState).toBe('MASTER');
  });

  it('origins from another boot are not compared (the state dir may outlive a reboot)', async () => {
    await t.agent(['release'], { origin: { bootId: 'old-boot', startTicks: 900_000 } });
    const master = await t.agent(['takeover'], { origin: { bootId: boot, startTicks: 10 } });
    expect(master.code).toBe(0);
  });

  it('the real origin of this process is read from /proc', async () => {
    const { currentOrigin } = await import('../../agent/src/origin.js');
    const origin = currentOrigin();
    expect(origin?.startTicks).toBeGreaterThan(0);
    expect(origin?.bootId).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('a MASTER recorded by a keepalived that has since died', () => {
  const crashed = { bootId: '', startTicks: 100, keepalived: { pid: 2 ** 22 + 7, startTicks: 99 } };

  it('reconcile does not act on it: the address stays with the node that leads now', async () => {
    const { currentOrigin } = await import('../../agent/src/origin.js');
    const bootId = currentOrigin()?.bootId ?? '';
    await t.agent(['takeover'], { origin: { ...crashed, bootId } });
    t.world.association = { eni: PEER.networkInterfaceId, ip: PEER.primaryPrivateIp };
    t.world.mock.resetHistory();
    const result = await t.agent(['reconcile']);
    expect(result.code).toBe(0);
    expect(t.world.mock.calls()).toHaveLength(0);
    expect(
      result.logs.find((l) => l.msg === 'recorded MASTER is stale: not reconciling')?.reason,
    ).toMatch(/keepalived process that reported it \(pid 4194311\) is no longer running/);
  });

  it('reconcile acts while the reporting keepalived lives, and stops once it is killed', async () => {
    // A process whose command name is keepalived: a copy of sleep, named so.
    const { copyFile, readFile: read } = await import('node:fs/promises');
    const { spawn } = await import('node:child_process');
    const fake = join(t.sandbox.dir, 'keepalived');
    await copyFile('/bin/sleep', fake);
    const { chmod } = await import('node:fs/promises');
    await chmod(fake, 0o755);
    const child = spawn(fake, ['30'], { stdio: 'ignore' });
    try {
      const stat = await read(`/proc/${child.pid}/stat`, 'utf8');
      const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
      const { currentOrigin } = await import('../../agent/src/origin.js');
      const origin = {
        bootId: currentOrigin()?.bootId ?? '',
        startTicks: 100,
        keepalived: { pid: child.pid as number, startTicks },
      };
      await t.agent(['takeover'], { origin });
      t.world.association = { eni: PEER.networkInterfaceId, ip: PEER.primaryPrivateIp };
      t.world.mock.resetHistory();
      const whileAlive = await t.agent(['reconcile']);
      expect(whileAlive.code).toBe(0);
      expect(t.world.mutatingCalls()).toEqual(['AssociateAddressCommand']);

      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      t.world.association = { eni: PEER.networkInterfaceId, ip: PEER.primaryPrivateIp };
      t.world.mock.resetHistory();
      const afterKill = await t.agent(['reconcile']);
      expect(afterKill.code).toBe(0);
      expect(t.world.mutatingCalls()).toEqual([]);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('status names the stale state', async () => {
    const { currentOrigin } = await import('../../agent/src/origin.js');
    const bootId = currentOrigin()?.bootId ?? '';
    await t.agent(['takeover'], { origin: { ...crashed, bootId } });
    const result = await t.agent(['status', '--json']);
    expect(JSON.parse(result.stdout).problems).toContain(
      'the recorded MASTER state is stale: the keepalived process that reported it (pid 4194311) is no longer running; check keepalived',
    );
  });

  it('a reboot since the state was recorded makes it stale too', async () => {
    const { reporterGone } = await import('../../agent/src/origin.js');
    expect(reporterGone({ bootId: 'another-boot', startTicks: 1, keepalived: null })).toMatch(
      /rebooted/,
    );
  });
});

describe('reclaimFromPeer: no ping-pong in a VRRP partition', () => {
  const lowerPriorityNode = () =>
    t.sandbox.writeConfig(defaultConfig(t.sandbox, { reclaimFromPeer: false }));

  it('the lower-priority node’s reconcile leaves an address the peer moved after its verified takeover', async () => {
    await lowerPriorityNode();
    expect((await takeover()).code).toBe(0);
    // The other node (also MASTER, on its side of the partition) moved it away.
    t.world.ips.set(VIP, PEER.networkInterfaceId);
    t.world.association = { eni: PEER.networkInterfaceId, ip: VIP };
    t.world.mock.resetHistory();
    const result = await t.agent(['reconcile']);
    expect(result.code).toBe(0);
    expect(t.world.mutatingCalls()).toEqual([]);
    expect(result.logs.some((l) => l.outcome === 'deferred')).toBe(true);
    // ...and status on it says so.
    const status = await t.agent(['status', '--json']);
    expect(status.code).toBe(1);
  });

  it('the same node still repairs its own failed takeover', async () => {
    await lowerPriorityNode();
    t.world.mock.on(AssociateAddressCommand).rejectsOnce(ec2Error('UnauthorizedOperation', 403));
    expect((await takeover()).code).toBe(1);
    t.world.mock.on(AssociateAddressCommand).callsFake((input) => {
      t.world.association = { eni: input.NetworkInterfaceId, ip: input.PrivateIpAddress };
      return {};
    });
    const result = await t.agent(['reconcile']);
    expect(result.code).toBe(0);
    expect(t.world.association).toEqual({ eni: THIS_NODE.networkInterfaceId, ip: VIP });
  });

  it('a new MASTER transition always acts, whatever reclaimFromPeer says', async () => {
    await lowerPriorityNode();
    await takeover();
    t.world.ips.set(VIP, PEER.networkInterfaceId);
    t.world.association = { eni: PEER.networkInterfaceId, ip: VIP };
    const again = await takeover();
    expect(again.code).toBe(0);
    expect(t.world.association).toEqual({ eni: THIS_NODE.networkInterfaceId, ip: VIP });
  });

  it('reclaimFromPeer must be a boolean', async () => {
    await t.sandbox.writeConfig(defaultConfig(t.sandbox, { reclaimFromPeer: 'no' }));
    const result = await takeover();
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/"reclaimFromPeer" .* must be true or false, not "no"/);
  });
});
