import { describe, expect, it } from 'vitest';
import { CONTEXT_KEYS, configFromContext } from '../../lib/context';

const from = (context: Record<string, unknown>) =>
  configFromContext((key) => context[key], Object.keys(context));

describe('context keys (-c key=value)', () => {
  it('give the defaults when absent', () => {
    const { stackId, props } = from({});
    expect(stackId).toBe('KeepalivedEipPair');
    expect(props.mode).toBeUndefined();
    expect(props.existingVpc).toBeUndefined();
    expect(props.machineImage).toBeUndefined();
  });

  it('are parsed from the strings `-c` gives', () => {
    const { stackId, props } = from({
      stackId: 'LbPair',
      mode: 'cross-az',
      instanceType: 't4g.small',
      amiId: 'ami-0123456789abcdef0',
      addressBlockOffset: '32',
      rootVolumeGiB: '16',
      servicePorts: '80, 443,8443',
      serviceCidrs: '198.51.100.0/24,203.0.113.0/24',
      backendPorts: '8080',
      ssm: 'false',
      apiEndpoints: 'false',
      detailedMonitoring: 'true',
      existingAllocationId: 'eipalloc-0123456789abcdef0',
      existingPublicIp: '203.0.113.7',
    });
    expect(stackId).toBe('LbPair');
    expect(props).toMatchObject({
      mode: 'cross-az',
      addressBlockOffset: 32,
      rootVolumeGiB: 16,
      servicePorts: [80, 443, 8443],
      serviceCidrs: ['198.51.100.0/24', '203.0.113.0/24'],
      backendPorts: [8080],
      ssm: false,
      apiEndpoints: false,
      detailedMonitoring: true,
      existingAllocationId: 'eipalloc-0123456789abcdef0',
      existingPublicIp: '203.0.113.7',
    });
    expect(props.instanceType?.toString()).toBe('t4g.small');
    expect(props.machineImage?.getImage(undefined as never).imageId).toBe('ami-0123456789abcdef0');
  });

  it('accept JSON values from cdk.json, and existingVpc as a JSON string or object', () => {
    const vpc = {
      vpcId: 'vpc-0123456789abcdef0',
      vpcCidr: '10.1.0.0/16',
      subnets: [
        {
          subnetId: 'subnet-0aaaaaaaaaaaaaaa1',
          cidr: '10.1.0.0/24',
          availabilityZone: 'eu-central-1a',
        },
      ],
    };
    expect(
      from({ existingVpc: JSON.stringify(vpc), ssm: false, servicePorts: [443] }).props,
    ).toMatchObject({
      existingVpc: { ...vpc, subnets: [{ ...vpc.subnets[0], routeTableId: undefined }] },
      ssm: false,
      servicePorts: [443],
    });
    expect(from({ existingVpc: vpc }).props.existingVpc?.vpcId).toBe('vpc-0123456789abcdef0');
  });

  it.each([
    [{ mode: 'active-passive' }, /mode must be one of same-subnet, cross-az/],
    [{ ssm: 'yes' }, /ssm must be true or false/],
    [{ addressBlockOffset: '-16' }, /whole number/],
    [{ servicePorts: '80,http' }, /'http' is not a port number/],
    [{ amiId: 'al2023' }, /not an AMI id/],
    [{ existingVpc: '{vpc' }, /existingVpc must be JSON/],
    [
      { existingVpc: '{"vpcId":"vpc-1","vpcCidr":"10.0.0.0/16","subnets":[]}' },
      /subnets must be a non-empty array/,
    ],
    [
      {
        existingVpc:
          '{"vpcId":"vpc-1","vpcCidr":"10.0.0.0/16","subnets":[{"subnetId":"subnet-1"}]}',
      },
      /cidr is missing/,
    ],
    [{ Mode: 'cross-az' }, /Unknown context key\(s\): Mode/],
  ])('reject %j with the fix', (context, message) => {
    expect(() => from(context)).toThrow(message);
  });

  it('ignore CDK’s own keys (feature flags, lookups)', () => {
    expect(() =>
      from({ '@aws-cdk/core:checkSecretUsage': true, 'acknowledged-issue-numbers': [1] }),
    ).not.toThrow();
  });

  it('are each documented in the README section', async () => {
    const { readFile } = await import('node:fs/promises');
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Deploying the pair (CDK)'));
    expect(section.length).toBeGreaterThan(100);
    for (const key of Object.keys(CONTEXT_KEYS)) expect(section, key).toContain(`\`${key}\``);
  });
});
