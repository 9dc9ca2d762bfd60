import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { synth } from './support';

describe('the Elastic IP', () => {
  it('is created with DeletionPolicy and UpdateReplacePolicy Retain, so deleting the stack keeps it', () => {
    // GIVEN no existing allocation / WHEN synthesized
    const { template } = synth();
    // THEN
    template.resourceCountIs('AWS::EC2::EIP', 1);
    template.hasResource('AWS::EC2::EIP', {
      Properties: { Domain: 'vpc' },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  it.each(['same-subnet', 'cross-az'] as const)(
    'is never associated by the stack (%s): the first election places it',
    (mode) => {
      const { template } = synth({ mode });
      template.resourceCountIs('AWS::EC2::EIPAssociation', 0);
      template.allResourcesProperties('AWS::EC2::EIP', {
        InstanceId: Match.absent(),
        NetworkInterfaceId: Match.absent(),
      });
    },
  );

  it('is imported by allocation id: nothing is created, the policy and outputs name it', () => {
    // GIVEN an existing allocation
    const { template } = synth({
      existingAllocationId: 'eipalloc-0123456789abcdef0',
      existingPublicIp: '203.0.113.7',
    });
    // THEN
    template.resourceCountIs('AWS::EC2::EIP', 0);
    template.hasOutput('AllocationId', { Value: 'eipalloc-0123456789abcdef0' });
    template.hasOutput('PublicIp', { Value: '203.0.113.7' });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: 'ec2:AssociateAddress',
            Resource: Match.arrayWith([
              {
                'Fn::Join': [
                  '',
                  [
                    'arn:',
                    { Ref: 'AWS::Partition' },
                    ':ec2:',
                    { Ref: 'AWS::Region' },
                    ':',
                    { Ref: 'AWS::AccountId' },
                    ':elastic-ip/eipalloc-0123456789abcdef0',
                  ],
                ],
              },
            ]),
          }),
        ]),
      },
    });
  });

  it('rejects an existing allocation without its public IP, saying how to find it', () => {
    expect(() => synth({ existingAllocationId: 'eipalloc-0123456789abcdef0' })).toThrow(
      /existingPublicIp.*aws ec2 describe-addresses --allocation-ids eipalloc-0123456789abcdef0/s,
    );
  });

  it('rejects a malformed allocation id', () => {
    expect(() =>
      synth({ existingAllocationId: '203.0.113.7', existingPublicIp: '203.0.113.7' }),
    ).toThrow(/not an allocation id.*eipalloc-/s);
  });

  it('rejects a malformed public IP', () => {
    expect(() =>
      synth({
        existingAllocationId: 'eipalloc-0123456789abcdef0',
        existingPublicIp: 'example.com',
      }),
    ).toThrow(/existingPublicIp 'example.com' is not an IPv4 address/);
  });

  it('rejects existingPublicIp without existingAllocationId', () => {
    expect(() => synth({ existingPublicIp: '203.0.113.7' })).toThrow(
      /only used with existingAllocationId/,
    );
  });
});
