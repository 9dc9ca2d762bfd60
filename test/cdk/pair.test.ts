import { Match } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { describe, expect, it } from 'vitest';
import { EXISTING_VPC, logicalId, synth } from './support';

describe('the pair of instances', () => {
  it.each(['same-subnet', 'cross-az'] as const)('requires IMDSv2 on both nodes (%s)', (mode) => {
    const { template } = synth({ mode });
    template.resourceCountIs('AWS::EC2::Instance', 2);
    template.allResourcesProperties('AWS::EC2::Instance', {
      // One hop: the agent runs on the host; a container behind a bridge cannot borrow the role.
      MetadataOptions: Match.objectLike({
        HttpTokens: 'required',
        HttpEndpoint: 'enabled',
        HttpPutResponseHopLimit: 1,
      }),
    });
  });

  it('encrypts the root volume of both nodes', () => {
    const { template } = synth();
    template.allResourcesProperties('AWS::EC2::Instance', {
      BlockDeviceMappings: [
        { DeviceName: '/dev/xvda', Ebs: Match.objectLike({ Encrypted: true, VolumeType: 'gp3' }) },
      ],
    });
  });

  it('runs the latest Amazon Linux 2023 by default, matching the instance architecture', () => {
    // GIVEN defaults (t3.small, x86_64) and a Graviton instance type
    const x86 = synth().template;
    const arm = synth({ instanceType: new ec2.InstanceType('t4g.small') }).template;
    // THEN the image comes from the public AL2023 SSM parameter of the right architecture
    x86.hasParameter('*', {
      Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>',
      Default: Match.stringLikeRegexp(
        '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-.*-x86_64',
      ),
    });
    arm.hasParameter('*', {
      Default: Match.stringLikeRegexp(
        '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-.*-arm64',
      ),
    });
    x86.allResourcesProperties('AWS::EC2::Instance', { InstanceType: 't3.small' });
    arm.allResourcesProperties('AWS::EC2::Instance', { InstanceType: 't4g.small' });
  });

  it('takes an overriding AMI and root volume size', () => {
    const { template } = synth({
      machineImage: ec2.MachineImage.genericLinux({ 'eu-central-1': 'ami-0123456789abcdef0' }),
      rootVolumeGiB: 16,
      env: { region: 'eu-central-1' },
    });
    template.allResourcesProperties('AWS::EC2::Instance', {
      ImageId: 'ami-0123456789abcdef0',
      BlockDeviceMappings: [Match.objectLike({ Ebs: Match.objectLike({ VolumeSize: 16 }) })],
    });
  });

  it('rejects a root volume size that is not a whole number of GiB', () => {
    expect(() => synth({ rootVolumeGiB: 7.5 })).toThrow(/rootVolumeGiB must be a whole number/);
  });

  it('gives each node an explicit primary ENI (device 0) at a fixed private IP', () => {
    const { template } = synth();
    const primaryEni = logicalId(template, 'AWS::EC2::NetworkInterface', {
      PrivateIpAddress: '10.0.0.20',
    });
    const secondaryEni = logicalId(template, 'AWS::EC2::NetworkInterface', {
      PrivateIpAddress: '10.0.0.21',
    });
    template.hasResourceProperties('AWS::EC2::Instance', {
      NetworkInterfaces: [{ DeviceIndex: '0', NetworkInterfaceId: { Ref: primaryEni } }],
    });
    template.hasResourceProperties('AWS::EC2::Instance', {
      NetworkInterfaces: [{ DeviceIndex: '0', NetworkInterfaceId: { Ref: secondaryEni } }],
    });
  });

  it.each(['same-subnet', 'cross-az'] as const)(
    'declares no secondary private IP on any ENI (%s): the VIP is runtime state',
    (mode) => {
      const { template } = synth({ mode });
      template.allResourcesProperties('AWS::EC2::NetworkInterface', {
        PrivateIpAddresses: Match.absent(),
        SecondaryPrivateIpAddressCount: Match.absent(),
      });
    },
  );

  it('has no SSH key and no detailed monitoring or termination protection by default', () => {
    const { template } = synth();
    template.allResourcesProperties('AWS::EC2::Instance', {
      KeyName: Match.absent(),
      Monitoring: false,
      DisableApiTermination: false,
    });
  });

  it('turns on the key pair, detailed monitoring and termination protection on request', () => {
    const { template } = synth({
      keyName: 'ops',
      detailedMonitoring: true,
      nodeTerminationProtection: true,
    });
    template.allResourcesProperties('AWS::EC2::Instance', {
      KeyName: 'ops',
      Monitoring: true,
      DisableApiTermination: true,
    });
  });
});

describe('same-subnet mode (the default)', () => {
  it('places both nodes in one subnet with a default VIP in the reserved block', () => {
    const { template } = synth();
    const enis = Object.values(template.findResources('AWS::EC2::NetworkInterface'));
    expect(enis).toHaveLength(2);
    expect(enis[0]?.Properties.SubnetId).toEqual(enis[1]?.Properties.SubnetId);
    template.hasOutput('Vip', { Value: '10.0.0.30' });
    template.hasOutput('Mode', { Value: 'same-subnet' });
  });

  it('reserves the /28 holding the nodes and the VIP explicitly, before any ENI or endpoint exists', () => {
    const { template } = synth();
    template.resourceCountIs('AWS::EC2::SubnetCidrReservation', 1);
    const reservation = logicalId(template, 'AWS::EC2::SubnetCidrReservation', {
      Cidr: '10.0.0.16/28',
      ReservationType: 'explicit',
    });
    for (const [type, resources] of [
      ['AWS::EC2::NetworkInterface', template.findResources('AWS::EC2::NetworkInterface')],
      [
        'AWS::EC2::VPCEndpoint',
        template.findResources('AWS::EC2::VPCEndpoint', {
          Properties: { VpcEndpointType: 'Interface' },
        }),
      ],
    ] as const) {
      for (const resource of Object.values(resources)) {
        expect(resource.DependsOn, type).toContain(reservation);
      }
    }
  });

  it('takes a VIP inside the reserved block', () => {
    const { template } = synth({ vip: '10.0.0.25' });
    template.hasOutput('Vip', { Value: '10.0.0.25' });
  });

  it('moves the block with addressBlockOffset', () => {
    const { template } = synth({ addressBlockOffset: 64 });
    template.hasResourceProperties('AWS::EC2::SubnetCidrReservation', { Cidr: '10.0.0.64/28' });
    template.hasOutput('PrimaryPrivateIp', { Value: '10.0.0.68' });
    template.hasOutput('SecondaryPrivateIp', { Value: '10.0.0.69' });
    template.hasOutput('Vip', { Value: '10.0.0.78' });
  });

  it.each([
    ['outside the subnet', '10.0.5.30', /not in the pair's subnet 10\.0\.0\.0\/24/],
    [
      'outside the reserved block',
      '10.0.0.100',
      /must lie in the pair's reserved block 10\.0\.0\.16\/28/,
    ],
    ["the primary node's IP", '10.0.0.20', /collides with a node's primary private IP/],
    ["the secondary node's IP", '10.0.0.21', /collides with a node's primary private IP/],
    ['not an address', '10.0.0', /not an IPv4 address/],
  ])('rejects a VIP %s', (_what, vip, message) => {
    expect(() => synth({ vip })).toThrow(message);
  });

  it('rejects an address block offset that is not a multiple of 16', () => {
    expect(() => synth({ addressBlockOffset: 20 })).toThrow(/multiple of 16/);
  });
});

describe('cross-az mode', () => {
  it('places the nodes in two subnets in two AZs, with no VIP', () => {
    const { template } = synth({ mode: 'cross-az' });
    const enis = Object.values(template.findResources('AWS::EC2::NetworkInterface'));
    expect(enis[0]?.Properties.SubnetId).not.toEqual(enis[1]?.Properties.SubnetId);
    template.hasOutput('Vip', { Value: 'none' });
    template.hasOutput('Mode', { Value: 'cross-az' });
    template.hasOutput('PrimaryAvailabilityZone', {
      Value: { 'Fn::Select': [0, { 'Fn::GetAZs': '' }] },
    });
    template.hasOutput('SecondaryAvailabilityZone', {
      Value: { 'Fn::Select': [1, { 'Fn::GetAZs': '' }] },
    });
    template.resourceCountIs('AWS::EC2::SubnetCidrReservation', 2);
  });

  it('rejects a VIP, and says why', () => {
    expect(() => synth({ mode: 'cross-az', vip: '10.0.0.30' })).toThrow(
      /only used in same-subnet mode.*cannot move to a node in another AZ.*Remove vip/s,
    );
  });

  it('rejects two existing subnets in the same AZ', () => {
    const sameAz = {
      ...EXISTING_VPC,
      subnets: EXISTING_VPC.subnets.map((s) => ({ ...s, availabilityZone: 'eu-central-1a' })),
    };
    expect(() => synth({ mode: 'cross-az', existingVpc: sameAz })).toThrow(
      /two different availability zones; both are in eu-central-1a/,
    );
  });

  it('rejects an existing VPC with one subnet', () => {
    expect(() =>
      synth({
        mode: 'cross-az',
        existingVpc: { ...EXISTING_VPC, subnets: [EXISTING_VPC.subnets[0]] },
      }),
    ).toThrow(/cross-az mode needs 2 subnet\(s\).*two availability zones/);
  });
});
