import 'aws-sdk-client-mock-vitest/extend';
import {
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  DescribeAddressesCommand,
} from '@aws-sdk/client-ec2';
import { beforeEach, describe, expect, it } from 'vitest';
import { StateStore } from '../../agent/src/state.js';
import {
  ALLOCATION_ID,
  defaultConfig,
  ec2Error,
  PEER,
  PUBLIC_IP,
  runAgent,
  THIS_NODE,
  useAgentFixture,
  VIP,
} from './harness.js';

const t = useAgentFixture();

const status = (json = true) => t.agent(['status', ...(json ? ['--json'] : [])]);
const record = (state: 'MASTER' | 'BACKUP') =>
  new StateStore(t.sandbox.stateDir, t.clock).recordTransition(state);

describe('status', () => {
  it('consistent: MASTER holds the address; the JSON has every key of the contract', async () => {
    await t.agent(['takeover']);
    const result = await status();
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toEqual({
      node: {
        instanceId: THIS_NODE.instanceId,
        networkInterfaceId: THIS_NODE.networkInterfaceId,
        vrrpState: 'MASTER',
        vrrpStateSince: expect.stringMatching(/Z$/),
      },
      addresses: [
        {
          allocationId: ALLOCATION_ID,
          publicIp: PUBLIC_IP,
          privateIp: VIP,
          association: {
            networkInterfaceId: THIS_NODE.networkInterfaceId,
            instanceId: THIS_NODE.instanceId,
            privateIpAddress: VIP,
          },
          privateIpHolder: THIS_NODE.networkInterfaceId,
          heldByThisNode: true,
        },
      ],
      lastTakeover: {
        startedAt: expect.any(String),
        finishedAt: expect.any(String),
        durationMs: expect.any(Number),
        outcome: 'verified',
      },
      consistent: true,
      problems: [],
    });
  });

  it('consistent: BACKUP holds nothing', async () => {
    await record('BACKUP');
    t.world.ips.set(VIP, PEER.networkInterfaceId);
    t.world.association = { eni: PEER.networkInterfaceId, ip: VIP };
    const result = await status();
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.consistent).toBe(true);
    expect(report.addresses[0].heldByThisNode).toBe(false);
    expect(report.addresses[0].privateIpHolder).toBe(PEER.networkInterfaceId);
  });

  it('drift: MASTER but the EIP points at the peer → exit 1 and the problem named', async () => {
    await record('MASTER');
    t.world.ips.set(VIP, PEER.networkInterfaceId);
    t.world.association = { eni: PEER.networkInterfaceId, ip: VIP };
    const result = await status();
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report.consistent).toBe(false);
    expect(report.problems[0]).toMatch(
      /this node is MASTER but eipalloc-0123456789abcdef0 \(203\.0\.113\.7\) points at eni-0bbbbbbbbbbbbbbb2 \(i-0bbbbbbbbbbbbbbb2\) 10\.0\.0\.50/,
    );
  });

  it('drift: BACKUP but still holding the address', async () => {
    await record('BACKUP');
    t.world.ips.set(VIP, THIS_NODE.networkInterfaceId);
    t.world.association = { eni: THIS_NODE.networkInterfaceId, ip: VIP };
    const result = await status();
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).problems[0]).toMatch(/this node is BACKUP but .* points here/);
  });

  it('exact comparison: an association to 10.0.0.5 is not the VIP 10.0.0.50', async () => {
    await record('MASTER');
    t.world.ips.set(VIP, THIS_NODE.networkInterfaceId);
    t.world.ips.set('10.0.0.5', THIS_NODE.networkInterfaceId);
    t.world.association = { eni: THIS_NODE.networkInterfaceId, ip: '10.0.0.5' };
    const result = await status();
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).addresses[0].heldByThisNode).toBe(false);
  });

  it('unknown: EC2 unreachable → exit 4, still valid JSON naming the problem', async () => {
    await record('MASTER');
    t.world.mock
      .on(DescribeAddressesCommand)
      .rejects(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    const result = await t.agent(['status', '--json', '--deadline', '5']);
    expect(result.code).toBe(4);
    const report = JSON.parse(result.stdout);
    expect(report.consistent).toBe(false);
    expect(report.node.vrrpState).toBe('MASTER');
    expect(report.problems[0]).toMatch(
      /state could not be determined: DescribeAddresses still failing \(ECONNREFUSED\)/,
    );
  });

  it('unknown: IMDS down → exit 4', async () => {
    const imds = {
      endpoint: 'memory://down',
      get: async () => {
        throw new (await import('../../agent/src/errors.js')).ImdsError(
          'IMDS unreachable at x (ECONNREFUSED)',
        );
      },
    };
    const result = await runAgent(['status', '-c', t.sandbox.configPath], { imds, clock: t.clock });
    expect(result.code).toBe(4);
    expect(result.stdout).toMatch(/^verdict\s+UNKNOWN$/m);
    expect(result.stdout).not.toMatch(/DRIFT/);
    expect(result.stdout).toMatch(/state could not be determined: IMDS unreachable/);
  });

  it('no transition recorded: UNKNOWN is reported as a problem', async () => {
    const result = await status();
    const report = JSON.parse(result.stdout);
    expect(report.node.vrrpState).toBe('UNKNOWN');
    expect(report.problems).toContain(
      'no VRRP transition recorded yet: keepalived has not called the agent on this node',
    );
  });

  it('the table shows state, where the EIP points, the last takeover and the verdict', async () => {
    await t.agent(['takeover']);
    const result = await status(false);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^vrrp\s+MASTER since 2026-11-23T03:00:00\.000Z/m);
    expect(result.stdout).toMatch(
      /eipalloc-0123456789abcdef0\s+203\.0\.113\.7\s+10\.0\.0\.50\s+eni-0aaaaaaaaaaaaaaa1 \(i-0aaaaaaaaaaaaaaa1\) 10\.0\.0\.50\s+eni-0aaaaaaaaaaaaaaa1\s+yes/,
    );
    expect(result.stdout).toMatch(/^last\s+verified in \d+ ms/m);
    expect(result.stdout).toMatch(/^verdict\s+CONSISTENT$/m);
  });

  it('status makes no mutating call', async () => {
    await record('MASTER');
    await status();
    expect(t.world.mock).not.toHaveReceivedCommand(AssignPrivateIpAddressesCommand);
    expect(t.world.mock).not.toHaveReceivedCommand(AssociateAddressCommand);
  });
});

describe('check', () => {
  it('permitted: DryRun of AssociateAddress answers DryRunOperation; nothing moves', async () => {
    const result = await t.agent(['check']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ok\s+imds\s+IMDSv2: i-0aaaaaaaaaaaaaaa1/m);
    expect(result.stdout).toMatch(/^ok\s+permission AssociateAddress\s+DryRun .*permitted/m);
    expect(t.world.mock).toHaveReceivedCommandWith(AssociateAddressCommand, {
      DryRun: true,
      AllowReassociation: true,
    });
    expect(t.world.association).toBeNull();
  });

  it('never sends AssignPrivateIpAddresses: EC2 has no DryRun for it, so a probe would move the VIP', async () => {
    t.world.ips.set(VIP, PEER.networkInterfaceId);
    const result = await t.agent(['check']);
    expect(result.code).toBe(0);
    expect(t.world.mock).not.toHaveReceivedCommand(AssignPrivateIpAddressesCommand);
    expect(t.world.ips.get(VIP)).toBe(PEER.networkInterfaceId);
    expect(result.stdout).toMatch(
      /^skip\s+permission AssignPrivateIpAddresses\s+not checkable without moving 10\.0\.0\.50: EC2 offers no DryRun/m,
    );
  });

  it('UnauthorizedOperation on a DryRun: FAIL naming the action, exit 1', async () => {
    t.world.mock.on(AssociateAddressCommand).rejects(ec2Error('UnauthorizedOperation', 403));
    const result = await t.agent(['check']);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^FAIL\s+permission AssociateAddress\s+AssociateAddress was refused \(UnauthorizedOperation\)/m,
    );
  });

  it('EC2 unreachable: exit 4', async () => {
    t.world.mock
      .on(DescribeAddressesCommand)
      .rejects(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    const result = await t.agent(['check', '--deadline', '5']);
    expect(result.code).toBe(4);
    expect(result.stdout).toMatch(/^FAIL\s+ec2/m);
  });
});

describe('status in cross-AZ mode (the EIP follows each node’s primary IP)', () => {
  beforeEach(async () => {
    await t.sandbox.writeConfig(
      defaultConfig(t.sandbox, { addresses: [{ allocationId: ALLOCATION_ID }] }),
    );
  });

  it('a BACKUP whose own primary IP is, naturally, on its own ENI is consistent', async () => {
    await record('BACKUP');
    t.world.association = { eni: PEER.networkInterfaceId, ip: PEER.primaryPrivateIp };
    const result = await status();
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ consistent: true, problems: [] });
  });

  it('a BACKUP the EIP still points at is drift', async () => {
    await record('BACKUP');
    t.world.association = { eni: THIS_NODE.networkInterfaceId, ip: THIS_NODE.primaryPrivateIp };
    const result = await status();
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).problems[0]).toMatch(/this node is BACKUP but .* points here/);
  });

  it('a MASTER the EIP points at, on its primary IP, is consistent', async () => {
    await record('MASTER');
    t.world.association = { eni: THIS_NODE.networkInterfaceId, ip: THIS_NODE.primaryPrivateIp };
    const result = await status();
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).addresses[0]).toMatchObject({
      privateIp: THIS_NODE.primaryPrivateIp,
      heldByThisNode: true,
    });
  });
});
