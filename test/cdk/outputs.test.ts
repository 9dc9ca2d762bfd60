import { describe, expect, it } from 'vitest';
import contract from '../../lib/outputs-contract.json' with { type: 'json' };
import { EXISTING_VPC, logicalId, synth } from './support';

const expectedKeys = [
  ...Object.keys(contract.pair),
  ...contract.nodes.flatMap((node) => Object.keys(contract.perNode).map((key) => `${node}${key}`)),
].sort();

describe('the outputs (lib/outputs-contract.json)', () => {
  it.each(['same-subnet', 'cross-az'] as const)(
    'are exactly the contract’s keys, so `cdk deploy --outputs-file` gives the inventory (%s)',
    (mode) => {
      const { template } = synth({ mode });
      expect(Object.keys(template.findOutputs('*')).sort()).toEqual(expectedKeys);
    },
  );

  it('match the contract’s example shape for the default stack', () => {
    const { template } = synth();
    const eip = logicalId(template, 'AWS::EC2::EIP');
    const primaryEni = logicalId(template, 'AWS::EC2::NetworkInterface', {
      PrivateIpAddress: '10.0.0.20',
    });
    template.hasOutput('AllocationId', { Value: { 'Fn::GetAtt': [eip, 'AllocationId'] } });
    template.hasOutput('PublicIp', { Value: { 'Fn::GetAtt': [eip, 'PublicIp'] } });
    template.hasOutput('Region', { Value: { Ref: 'AWS::Region' } });
    template.hasOutput('Mode', { Value: 'same-subnet' });
    template.hasOutput('Vip', { Value: '10.0.0.30' });
    template.hasOutput('PrimaryNetworkInterfaceId', { Value: { Ref: primaryEni } });
    template.hasOutput('PrimaryPrivateIp', { Value: '10.0.0.20' });
    template.hasOutput('SecondaryPrivateIp', { Value: '10.0.0.21' });
    template.hasOutput('PrimarySubnetCidr', { Value: '10.0.0.0/24' });
    template.hasOutput('SecondarySubnetCidr', { Value: '10.0.0.0/24' });
  });

  it('carry an existing VPC’s subnets, CIDRs and AZs', () => {
    const { template } = synth({ mode: 'cross-az', existingVpc: EXISTING_VPC });
    template.hasOutput('PrimaryPrivateIp', { Value: '10.1.0.20' });
    template.hasOutput('SecondaryPrivateIp', { Value: '10.1.1.21' });
    template.hasOutput('PrimarySubnetCidr', { Value: '10.1.0.0/24' });
    template.hasOutput('SecondaryAvailabilityZone', { Value: 'eu-central-1b' });
  });
});
