import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { actionsOf, ec2Arn, logicalId, policyStatements, resourcesOf, synth } from './support';

const MUTATING_FAILOVER_ACTIONS = ['ec2:AssociateAddress', 'ec2:AssignPrivateIpAddresses'];

describe('the failover policy', () => {
  it('grants exactly the Describe calls on "*", and AssociateAddress and AssignPrivateIpAddresses scoped (same-subnet)', () => {
    // GIVEN the default stack
    const { template } = synth();
    const eip = logicalId(template, 'AWS::EC2::EIP');
    const [primary, secondary] = ['10.0.0.20', '10.0.0.21'].map((ip) =>
      logicalId(template, 'AWS::EC2::NetworkInterface', { PrivateIpAddress: ip }),
    );
    const instances = Object.keys(template.findResources('AWS::EC2::Instance')).sort();
    const eniArns = [
      ec2Arn('network-interface', { Ref: primary }),
      ec2Arn('network-interface', { Ref: secondary }),
    ];
    // THEN
    expect(policyStatements(template)).toEqual([
      {
        Sid: 'ReadAddressesAndInterfaces',
        Effect: 'Allow',
        Action: ['ec2:DescribeAddresses', 'ec2:DescribeNetworkInterfaces'],
        Resource: '*',
      },
      {
        Sid: 'AssociateThisElasticIpWithThePair',
        Effect: 'Allow',
        Action: 'ec2:AssociateAddress',
        Resource: expect.arrayContaining([
          ec2Arn('elastic-ip', { 'Fn::GetAtt': [eip, 'AllocationId'] }),
          ...eniArns,
          ...instances.map((id) => ec2Arn('instance', { Ref: id })),
        ]),
      },
      {
        Sid: 'MoveTheVipBetweenThePairsInterfaces',
        Effect: 'Allow',
        Action: 'ec2:AssignPrivateIpAddresses',
        Resource: eniArns,
      },
    ]);
    const associate = policyStatements(template)[1];
    expect(associate && resourcesOf(associate)).toHaveLength(5);
  });

  it('drops AssignPrivateIpAddresses in cross-az mode (no VIP to move)', () => {
    const { template } = synth({ mode: 'cross-az' });
    const actions = policyStatements(template).flatMap(actionsOf);
    expect(actions).not.toContain('ec2:AssignPrivateIpAddresses');
    expect(actions).toContain('ec2:AssociateAddress');
  });

  it.each(['same-subnet', 'cross-az'] as const)(
    'puts no mutating action on a bare "*", and no action wildcard (%s)',
    (mode) => {
      const { template } = synth({ mode });
      for (const statement of policyStatements(template)) {
        for (const action of actionsOf(statement)) {
          expect(action).not.toContain('*');
          if (!action.startsWith('ec2:Describe')) {
            expect(resourcesOf(statement)).not.toContain('*');
            expect(MUTATING_FAILOVER_ACTIONS).toContain(action);
          }
        }
        expect(statement.Effect).toBe('Allow');
        expect(statement.Condition).toBeUndefined();
      }
    },
  );

  it('is attached to the nodes’ role, which only EC2 can assume, through the instance profile', () => {
    const { template } = synth();
    const role = logicalId(template, 'AWS::IAM::Role', {
      Description: Match.stringLikeRegexp('keepalived EIP pair nodes'),
    });
    template.hasResourceProperties('AWS::IAM::Policy', { Roles: [{ Ref: role }] });
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [
          {
            Action: 'sts:AssumeRole',
            Effect: 'Allow',
            Principal: { Service: 'ec2.amazonaws.com' },
          },
        ],
      },
    });
    const profile = logicalId(template, 'AWS::IAM::InstanceProfile', { Roles: [{ Ref: role }] });
    template.allResourcesProperties('AWS::EC2::Instance', { IamInstanceProfile: { Ref: profile } });
  });

  it('attaches the SSM managed policy only when SSM access is on', () => {
    const ssmPolicy = {
      'Fn::Join': [
        '',
        ['arn:', { Ref: 'AWS::Partition' }, ':iam::aws:policy/AmazonSSMManagedInstanceCore'],
      ],
    };
    synth().template.hasResourceProperties('AWS::IAM::Role', {
      Description: Match.stringLikeRegexp('keepalived EIP pair nodes'),
      ManagedPolicyArns: [ssmPolicy],
    });
    synth({ ssm: false }).template.hasResourceProperties('AWS::IAM::Role', {
      Description: Match.stringLikeRegexp('keepalived EIP pair nodes'),
      ManagedPolicyArns: Match.absent(),
    });
  });
});
