import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  contract,
  inventoryScript,
  type Outputs,
  run,
  sampleOutputs,
  stackName,
  writeOutputs,
} from './helpers.js';

interface Inventory {
  readonly keepalived_eip_pair: { hosts: string[]; vars: Record<string, unknown> };
  readonly _meta: { hostvars: Record<string, Record<string, unknown>> };
}

describe('ansible/inventory/cdk_outputs.py', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'eip-inventory-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function list(outputs: Outputs | string, env: NodeJS.ProcessEnv = {}) {
    const file = typeof outputs === 'string' ? outputs : writeOutputs(dir, outputs);
    return run(inventoryScript, ['--list'], { EIP_PAIR_OUTPUTS: file, ...env });
  }

  function inventory(outputs: Outputs, env: NodeJS.ProcessEnv = {}): Inventory {
    const result = list(outputs, env);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    return JSON.parse(result.stdout) as Inventory;
  }

  it("turns the contract example into a two-host pair, each the other one's peer", () => {
    const inv = inventory(sampleOutputs('same-subnet'));
    const example = contract.example[stackName] ?? {};
    expect(inv.keepalived_eip_pair.hosts).toEqual(['primary', 'secondary']);
    expect(inv.keepalived_eip_pair.vars).toEqual({
      keepalived_eip_mode: 'same-subnet',
      keepalived_eip_allocation_id: example.AllocationId,
      keepalived_eip_vip: example.Vip,
      keepalived_eip_region: example.Region,
    });
    expect(inv._meta.hostvars.primary).toEqual({
      ansible_host: example.PrimaryPrivateIp,
      keepalived_eip_instance_id: example.PrimaryInstanceId,
      keepalived_eip_private_ip: example.PrimaryPrivateIp,
      keepalived_eip_peer_ip: example.SecondaryPrivateIp,
      keepalived_eip_subnet_cidr: example.PrimarySubnetCidr,
      keepalived_eip_priority: 150,
      keepalived_eip_reclaim_from_peer: true,
    });
    expect(inv._meta.hostvars.secondary).toMatchObject({
      keepalived_eip_private_ip: example.SecondaryPrivateIp,
      keepalived_eip_peer_ip: example.PrimaryPrivateIp,
      keepalived_eip_priority: 100,
      keepalived_eip_reclaim_from_peer: false,
    });
  });

  it('leaves the VIP empty in cross-az mode', () => {
    const inv = inventory(sampleOutputs('cross-az'));
    expect(inv.keepalived_eip_pair.vars).toMatchObject({
      keepalived_eip_mode: 'cross-az',
      keepalived_eip_vip: '',
    });
    expect(inv._meta.hostvars.secondary?.keepalived_eip_subnet_cidr).toBe('10.0.1.0/24');
  });

  it('reaches the nodes through SSM by instance id when asked to', () => {
    const inv = inventory(sampleOutputs('same-subnet'), {
      EIP_PAIR_CONNECTION: 'ssm',
      EIP_PAIR_SSM_BUCKET: 'my-ssm-bucket',
    });
    expect(inv.keepalived_eip_pair.vars).toMatchObject({
      ansible_connection: 'community.aws.aws_ssm',
      ansible_aws_ssm_region: 'eu-central-1',
      ansible_aws_ssm_bucket_name: 'my-ssm-bucket',
    });
    expect(inv._meta.hostvars.primary?.ansible_host).toBe('i-0aaaaaaaaaaaaaaa1');
  });

  it("answers --host with that host's variables", () => {
    const file = writeOutputs(dir, sampleOutputs('same-subnet'));
    const result = run(inventoryScript, ['--host', 'secondary'], { EIP_PAIR_OUTPUTS: file });
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ keepalived_eip_priority: 100 });
  });

  it('requires every key of lib/outputs-contract.json and names the missing ones', () => {
    const keys = [
      ...Object.keys(contract.pair),
      ...contract.nodes.flatMap((node) => Object.keys(contract.perNode).map((key) => node + key)),
    ];
    for (const key of keys) {
      const outputs = sampleOutputs('same-subnet');
      delete outputs[stackName]?.[key];
      const result = list(outputs);
      expect(result.status, key).toBe(1);
      expect(result.stderr).toContain(`lacks outputs ${key} `);
    }
  });

  it('says what is wrong with the outputs file, the stack, the mode and the connection', () => {
    const missing = list(join(dir, 'absent.json'));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('cdk deploy --outputs-file cdk-outputs.json');

    const otherStack = list({ OtherStack: {} });
    expect(otherStack.stderr).toContain(`stack ${stackName} is not in the outputs file`);

    const badMode = sampleOutputs('same-subnet');
    (badMode[stackName] ?? {}).Mode = 'anywhere';
    expect(list(badMode).stderr).toContain("Mode is 'anywhere'");

    const noBucket = list(sampleOutputs('same-subnet'), { EIP_PAIR_CONNECTION: 'ssm' });
    expect(noBucket.status).toBe(1);
    expect(noBucket.stderr).toContain('EIP_PAIR_SSM_BUCKET');

    expect(list(sampleOutputs('same-subnet'), { EIP_PAIR_CONNECTION: 'telnet' }).status).toBe(1);
  });
});
