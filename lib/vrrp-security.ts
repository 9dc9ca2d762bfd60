import { Token, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { parseCidr } from './addressing';

/** VRRP is IP protocol 112 (RFC 5798); it has no ports. */
export const VRRP = new ec2.Port({
  protocol: ec2.Protocol.VRRP,
  stringRepresentation: 'VRRP (IP protocol 112)',
});

export interface VrrpSecurityProps {
  readonly vpc: ec2.IVpc;
  /**
   * TCP ports the load balancer serves.
   * @default [80, 443]
   */
  readonly servicePorts?: readonly number[] | undefined;
  /**
   * IPv4 CIDRs allowed to reach the service ports.
   * @default ['0.0.0.0/0'] (a public load balancer)
   */
  readonly serviceCidrs?: readonly string[] | undefined;
  /**
   * TCP ports of the backends the load balancer forwards to.
   * @default [80, 443]
   */
  readonly backendPorts?: readonly number[] | undefined;
  /**
   * IPv4 CIDRs where the backends live.
   * @default the VPC's CIDR
   */
  readonly backendCidrs?: readonly string[] | undefined;
  /**
   * A CIDR allowed to reach SSH (TCP 22). Never the whole internet.
   * @default none: no SSH rule; use SSM Session Manager
   */
  readonly adminCidr?: string | undefined;
}

/**
 * The pair's security group: VRRP only between the two nodes (a rule whose source is this group,
 * never a CIDR), the service ports from configurable CIDRs, no SSH from the internet, and egress
 * limited to VRRP to the peer, HTTPS (the AWS APIs) and the backends' ports.
 */
export class VrrpSecurity extends Construct {
  public readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: VrrpSecurityProps) {
    super(scope, id);
    const servicePorts = props.servicePorts ?? [80, 443];
    const serviceCidrs = props.serviceCidrs ?? ['0.0.0.0/0'];
    const backendPorts = props.backendPorts ?? [80, 443];
    const backendCidrs = props.backendCidrs ?? [props.vpc.vpcCidrBlock];
    for (const port of [...servicePorts, ...backendPorts]) validatePort(port);
    for (const cidr of [...serviceCidrs, ...backendCidrs])
      validateCidr(cidr, 'serviceCidrs/backendCidrs');
    if (props.adminCidr !== undefined) {
      validateCidr(props.adminCidr, 'adminCidr');
      if (props.adminCidr.endsWith('/0')) {
        throw new Error(
          `adminCidr ${props.adminCidr} would open SSH to the whole internet. Use SSM Session Manager ` +
            '(the default) or give the CIDR of your VPN or office, e.g. 198.51.100.0/24.',
        );
      }
    }

    this.securityGroup = new ec2.SecurityGroup(this, 'Resource', {
      vpc: props.vpc,
      description:
        'keepalived EIP pair: VRRP between the peers, service ports, egress to the EC2 API',
      allowAllOutbound: false,
    });
    const sg = this.securityGroup;

    // A rule that names its own group is rendered as a separate resource, so no cycle arises.
    sg.addIngressRule(sg, VRRP, 'VRRP adverts from the peer');
    sg.addEgressRule(sg, VRRP, 'VRRP adverts to the peer');

    for (const cidr of serviceCidrs) {
      for (const port of servicePorts) {
        sg.addIngressRule(
          ec2.Peer.ipv4(cidr),
          ec2.Port.tcp(port),
          `Load balancer service port ${port}`,
        );
      }
    }
    if (props.adminCidr !== undefined) {
      sg.addIngressRule(
        ec2.Peer.ipv4(props.adminCidr),
        ec2.Port.tcp(22),
        'SSH from the admin CIDR',
      );
    }

    // The AWS APIs have no fixed addresses, so HTTPS cannot be narrowed by CIDR here; routing decides
    // where it goes. Without the EIP a node reaches only what the VPC endpoints give it (EC2, SSM,
    // and S3 for the Amazon Linux repositories); a prefix-list rule for S3 would need a lookup.
    sg.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'HTTPS to the AWS APIs: EC2 for failover, SSM, package repositories on S3',
    );
    for (const cidr of backendCidrs) {
      for (const port of backendPorts) {
        sg.addEgressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(port), `Backends on port ${port}`);
      }
    }

    if (serviceCidrs.some((cidr) => cidr.endsWith('/0'))) {
      Validations.of(sg).acknowledge({
        id: 'AwsSolutions::AwsSolutions-EC23',
        reason:
          'A public load balancer serves its service ports (servicePorts, TCP only) to the internet by ' +
          'design; SSH is never opened this way (adminCidr rejects /0). Narrow with serviceCidrs.',
      });
    }
  }
}

function validatePort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`Port ${port} is not a TCP port (1-65535).`);
  }
}

function validateCidr(cidr: string, what: string): void {
  if (Token.isUnresolved(cidr)) return; // the VPC's own CIDR, resolved by CloudFormation
  if (!parseCidr(cidr)) {
    throw new Error(`${what}: '${cidr}' is not an IPv4 CIDR such as 203.0.113.0/24.`);
  }
}
