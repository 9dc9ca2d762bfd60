import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { KeepalivedEipPairStack } from '../../lib/stack';
import { EXISTING_VPC, synth } from './support';

describe('the VPC', () => {
  it('is new by default: two AZs, public subnets, no NAT gateway, a free S3 gateway endpoint', () => {
    const { template } = synth();
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '10.0.0.0/16' });
    template.resourceCountIs('AWS::EC2::Subnet', 2);
    template.allResourcesProperties('AWS::EC2::Subnet', { MapPublicIpOnLaunch: false });
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourcePropertiesCountIs('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway' }, 1);
  });

  it('takes its CIDR from vpcCidr', () => {
    const { template } = synth({ vpcCidr: '10.20.0.0/16' });
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '10.20.0.0/16' });
    template.hasOutput('PrimaryPrivateIp', { Value: '10.20.0.20' });
  });

  it('is an existing one when given: nothing created, the ENIs in its subnets', () => {
    const { template } = synth({ existingVpc: EXISTING_VPC });
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.resourceCountIs('AWS::EC2::Subnet', 0);
    template.allResourcesProperties('AWS::EC2::NetworkInterface', {
      SubnetId: 'subnet-0aaaaaaaaaaaaaaa1',
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroup', { VpcId: 'vpc-0123456789abcdef0' });
  });

  it('rejects an existing subnet too small for the reserved block', () => {
    const tiny = {
      ...EXISTING_VPC,
      subnets: [{ ...EXISTING_VPC.subnets[0], cidr: '10.1.0.0/27' }],
    };
    expect(() => synth({ existingVpc: tiny })).toThrow(/too small.*\/26 or larger/);
  });
});

describe('cdk-nag AwsSolutions', () => {
  it.each([
    ['same-subnet', {}],
    ['cross-az', { mode: 'cross-az' as const }],
    [
      'existing VPC, imported EIP, no SSM, no endpoints, SSH from a CIDR',
      {
        mode: 'cross-az' as const,
        existingVpc: EXISTING_VPC,
        existingAllocationId: 'eipalloc-0123456789abcdef0',
        existingPublicIp: '203.0.113.7',
        ssm: false,
        apiEndpoints: false,
        adminCidr: '198.51.100.0/24',
        keyName: 'ops',
      },
    ],
    [
      'everything hardened',
      {
        serviceCidrs: ['198.51.100.0/24'],
        detailedMonitoring: true,
        nodeTerminationProtection: true,
      },
    ],
  ])('reports no unacknowledged finding: %s', (_name, props) => {
    // synth() runs the pack as a validation plugin and throws on any finding
    expect(() => synth(props)).not.toThrow();
  });

  it('fails synth when a finding is not acknowledged', () => {
    // GIVEN the stack with every acknowledgment dropped
    const app = new App();
    const stack = new KeepalivedEipPairStack(app, 'KeepalivedEipPair');
    for (const node of stack.node.findAll()) {
      const kept = node.node.metadata.filter(
        (m) => m.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY,
      );
      (node.node as unknown as { _metadata: unknown[] })._metadata = kept;
    }
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    // THEN every acknowledged rule is reported again, and synth fails
    expect(() => app.synth()).toThrow(
      /AwsSolutions-VPC7[\s\S]*AwsSolutions-EC23[\s\S]*AwsSolutions-IAM4[\s\S]*AwsSolutions-EC28[\s\S]*AwsSolutions-EC29[\s\S]*AwsSolutions-IAM5/,
    );
  });

  it('acknowledges only the expected rules, each with a reason beside its construct', () => {
    const { stack } = synth({ mode: 'same-subnet' });
    const acknowledged: [string, string, string][] = [];
    const visit = (c: IConstruct) => {
      for (const entry of c.node.metadata) {
        if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
        for (const [rule, reason] of Object.entries(entry.data as Record<string, string>)) {
          // aws-cdk-lib acknowledges some cfn-lint warnings of its own on the stack; only ours count
          if (rule.startsWith('AwsSolutions::')) {
            acknowledged.push([c.node.path, rule.slice('AwsSolutions::'.length), reason]);
          }
        }
      }
    };
    for (const c of stack.node.findAll()) visit(c);
    expect(acknowledged.map(([path, rule]) => `${path} ${rule}`).sort()).toEqual([
      'KeepalivedEipPair/Pair/FailoverPolicy/Resource AwsSolutions-IAM5[Resource::*]',
      'KeepalivedEipPair/Pair/Primary AwsSolutions-EC28',
      'KeepalivedEipPair/Pair/Primary AwsSolutions-EC29',
      'KeepalivedEipPair/Pair/Role AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]',
      'KeepalivedEipPair/Pair/Secondary AwsSolutions-EC28',
      'KeepalivedEipPair/Pair/Secondary AwsSolutions-EC29',
      'KeepalivedEipPair/Pair/Security/Resource AwsSolutions-EC23',
      'KeepalivedEipPair/Vpc AwsSolutions-VPC7',
    ]);
    for (const [, , reason] of acknowledged) expect(reason.length).toBeGreaterThan(60);
  });
});
