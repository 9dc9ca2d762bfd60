import { Match, type Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { logicalId, synth } from './support';

interface Rule {
  readonly IpProtocol: string;
  readonly FromPort?: number;
  readonly ToPort?: number;
  readonly CidrIp?: unknown;
  readonly SourceSecurityGroupId?: unknown;
  readonly DestinationSecurityGroupId?: unknown;
  readonly DestinationPrefixListId?: unknown;
  readonly GroupId?: unknown;
}

const pairGroupId = (template: Template) => {
  const id = logicalId(template, 'AWS::EC2::SecurityGroup', {
    GroupDescription: Match.stringLikeRegexp('VRRP between the peers'),
  });
  return { id, ref: { 'Fn::GetAtt': [id, 'GroupId'] } };
};

/** Every ingress or egress rule of the pair's group, inline or standalone. */
function rules(template: Template, direction: 'Ingress' | 'Egress'): Rule[] {
  const pair = pairGroupId(template);
  const inline = (template.findResources('AWS::EC2::SecurityGroup')[pair.id]?.Properties[
    `SecurityGroup${direction}`
  ] ?? []) as Rule[];
  const standalone = Object.values(template.findResources(`AWS::EC2::SecurityGroup${direction}`))
    .map((r) => r.Properties as Rule)
    .filter((r) => JSON.stringify(r.GroupId) === JSON.stringify(pair.ref));
  return [...inline, ...standalone];
}

describe('VRRP (IP protocol 112)', () => {
  it.each(['same-subnet', 'cross-az'] as const)(
    'is allowed in only from the pair’s own group, never from a CIDR (%s)',
    (mode) => {
      const { template } = synth({ mode });
      const pair = pairGroupId(template);
      const vrrpIn = rules(template, 'Ingress').filter((r) => r.IpProtocol === '112');
      expect(vrrpIn).toHaveLength(1);
      expect(vrrpIn[0]?.SourceSecurityGroupId).toEqual(pair.ref);
      expect(vrrpIn[0]?.CidrIp).toBeUndefined();
      // and no rule anywhere in the template opens 112 (or all protocols) to a CIDR
      const everyRule = [
        ...Object.values(template.findResources('AWS::EC2::SecurityGroup')).flatMap(
          (g) =>
            [
              ...(g.Properties.SecurityGroupIngress ?? []),
              ...(g.Properties.SecurityGroupEgress ?? []),
            ] as Rule[],
        ),
        ...Object.values(template.findResources('AWS::EC2::SecurityGroupIngress')).map(
          (r) => r.Properties as Rule,
        ),
        ...Object.values(template.findResources('AWS::EC2::SecurityGroupEgress')).map(
          (r) => r.Properties as Rule,
        ),
      ];
      for (const rule of everyRule.filter((r) => r.IpProtocol === '112' || r.IpProtocol === '-1')) {
        expect(rule.CidrIp).toBeUndefined();
      }
    },
  );

  it('is allowed out only to the pair’s own group', () => {
    const { template } = synth();
    const pair = pairGroupId(template);
    const vrrpOut = rules(template, 'Egress').filter((r) => r.IpProtocol === '112');
    expect(vrrpOut).toEqual([expect.objectContaining({ DestinationSecurityGroupId: pair.ref })]);
  });
});

describe('ingress', () => {
  it('opens the service ports 80 and 443 to the internet by default, and nothing else', () => {
    const { template } = synth();
    const inbound = rules(template, 'Ingress').filter((r) => r.IpProtocol !== '112');
    expect(inbound.map((r) => [r.IpProtocol, r.FromPort, r.ToPort, r.CidrIp])).toEqual([
      ['tcp', 80, 80, '0.0.0.0/0'],
      ['tcp', 443, 443, '0.0.0.0/0'],
    ]);
  });

  it('uses configurable service ports and CIDRs', () => {
    const { template } = synth({
      servicePorts: [8443],
      serviceCidrs: ['198.51.100.0/24', '203.0.113.0/24'],
    });
    const inbound = rules(template, 'Ingress').filter((r) => r.IpProtocol !== '112');
    expect(inbound.map((r) => [r.FromPort, r.CidrIp])).toEqual([
      [8443, '198.51.100.0/24'],
      [8443, '203.0.113.0/24'],
    ]);
  });

  it('has no SSH rule by default (SSM Session Manager instead)', () => {
    const { template } = synth();
    expect(rules(template, 'Ingress').filter((r) => r.FromPort === 22)).toEqual([]);
  });

  it('opens SSH only to the admin CIDR when one is given', () => {
    const { template } = synth({ adminCidr: '198.51.100.0/24' });
    expect(rules(template, 'Ingress').filter((r) => r.FromPort === 22)).toEqual([
      expect.objectContaining({ IpProtocol: 'tcp', ToPort: 22, CidrIp: '198.51.100.0/24' }),
    ]);
  });

  it('rejects SSH from the internet (adminCidr 0.0.0.0/0)', () => {
    expect(() => synth({ adminCidr: '0.0.0.0/0' })).toThrow(
      /would open SSH to the whole internet.*SSM Session Manager/s,
    );
  });

  it.each([
    [{ serviceCidrs: ['10.0.0.0/33'] }, /not an IPv4 CIDR/],
    [{ adminCidr: 'office' }, /adminCidr: 'office' is not an IPv4 CIDR/],
    [{ servicePorts: [0] }, /Port 0 is not a TCP port/],
    [{ backendPorts: [70000] }, /Port 70000 is not a TCP port/],
  ])('rejects malformed network props %j', (props, message) => {
    expect(() => synth(props)).toThrow(message);
  });
});

describe('egress', () => {
  it('allows only VRRP to the peer, HTTPS, and the backends’ ports to the VPC', () => {
    const { template } = synth();
    const pair = pairGroupId(template);
    const vpcCidr = { 'Fn::GetAtt': [logicalId(template, 'AWS::EC2::VPC'), 'CidrBlock'] };
    const outbound = rules(template, 'Egress').map((r) => [
      r.IpProtocol,
      r.FromPort,
      r.CidrIp ?? r.DestinationSecurityGroupId,
    ]);
    expect(outbound).toEqual(
      expect.arrayContaining([
        ['112', undefined, pair.ref],
        ['tcp', 443, '0.0.0.0/0'],
        ['tcp', 80, vpcCidr],
        ['tcp', 443, vpcCidr],
      ]),
    );
    expect(outbound).toHaveLength(4);
  });

  it('uses configurable backend ports and CIDRs', () => {
    const { template } = synth({ backendPorts: [8080], backendCidrs: ['10.0.128.0/20'] });
    const backend = rules(template, 'Egress').filter((r) => r.FromPort === 8080);
    expect(backend).toEqual([
      expect.objectContaining({ IpProtocol: 'tcp', CidrIp: '10.0.128.0/20' }),
    ]);
  });
});

describe('the path to the EC2 API', () => {
  it.each([
    ['same-subnet', 1],
    ['cross-az', 2],
  ] as const)(
    'is an EC2 interface endpoint with private DNS in the pair’s subnets (%s)',
    (mode, subnets) => {
      const { template } = synth({ mode });
      const ec2Endpoint = Object.values(
        template.findResources('AWS::EC2::VPCEndpoint', {
          Properties: {
            ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.ec2']] },
          },
        }),
      );
      expect(ec2Endpoint).toHaveLength(1);
      expect(ec2Endpoint[0]?.Properties).toMatchObject({
        PrivateDnsEnabled: true,
        VpcEndpointType: 'Interface',
      });
      const enis = Object.values(template.findResources('AWS::EC2::NetworkInterface'));
      const pairSubnets = new Set(enis.map((e) => JSON.stringify(e.Properties.SubnetId)));
      expect(ec2Endpoint[0]?.Properties.SubnetIds).toHaveLength(subnets);
      expect(
        new Set(ec2Endpoint[0]?.Properties.SubnetIds.map((s: unknown) => JSON.stringify(s))),
      ).toEqual(pairSubnets);
    },
  );

  it('adds the SSM endpoints when SSM is on, and only HTTPS from the pair reaches them', () => {
    const { template } = synth();
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 4); // ec2, ssm, ssmmessages + the S3 gateway
    const endpointGroup = logicalId(template, 'AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('VPC interface endpoints'),
    });
    const interfaces = Object.values(
      template.findResources('AWS::EC2::VPCEndpoint', {
        Properties: { VpcEndpointType: 'Interface' },
      }),
    );
    expect(interfaces).toHaveLength(3);
    for (const endpoint of interfaces) {
      expect(endpoint.Properties.SecurityGroupIds).toEqual([
        { 'Fn::GetAtt': [endpointGroup, 'GroupId'] },
      ]);
      expect(endpoint.Properties.PrivateDnsEnabled).toBe(true);
    }
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress'))
      .map((r) => r.Properties as Rule)
      .filter(
        (r) =>
          JSON.stringify(r.GroupId) ===
          JSON.stringify({ 'Fn::GetAtt': [endpointGroup, 'GroupId'] }),
      );
    expect(ingress).toEqual([
      expect.objectContaining({
        IpProtocol: 'tcp',
        FromPort: 443,
        SourceSecurityGroupId: pairGroupId(template).ref,
      }),
    ]);
    expect(
      template.findResources('AWS::EC2::SecurityGroup')[endpointGroup]?.Properties
        .SecurityGroupIngress,
    ).toBeUndefined();
  });

  it('creates only the EC2 endpoint when SSM is off', () => {
    const { template } = synth({ ssm: false });
    template.resourcePropertiesCountIs(
      'AWS::EC2::VPCEndpoint',
      { VpcEndpointType: 'Interface' },
      1,
    );
  });

  it('creates no interface endpoint when opted out (a NAT or public addresses give the path)', () => {
    const { template } = synth({ apiEndpoints: false });
    template.resourcePropertiesCountIs(
      'AWS::EC2::VPCEndpoint',
      { VpcEndpointType: 'Interface' },
      0,
    );
    const https = rules(template, 'Egress').filter(
      (r) => r.FromPort === 443 && r.CidrIp === '0.0.0.0/0',
    );
    expect(https).toHaveLength(1);
  });
});
