import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';

export interface ApiEndpointsProps {
  readonly vpc: ec2.IVpc;
  /** The pair's subnets: one endpoint network interface is placed in each (one per AZ). */
  readonly subnets: readonly ec2.ISubnet[];
  /**
   * Also create the endpoints SSM Session Manager needs (ssm, ssmmessages).
   * @default true
   */
  readonly ssm?: boolean;
}

/**
 * The passive node's path to the EC2 API. The node that must take over is the one without the
 * Elastic IP, and in a public subnet without a public address it has no route out; an interface
 * endpoint with private DNS answers `ec2.<region>.amazonaws.com` inside the VPC, so the agent needs
 * no endpoint configuration. Only the pair's security group may reach the endpoints (HTTPS).
 */
export class ApiEndpoints extends Construct {
  /** The endpoints' security group: the pair's HTTPS egress goes here. */
  public readonly securityGroup: ec2.SecurityGroup;
  public readonly endpoints: readonly ec2.InterfaceVpcEndpoint[];

  constructor(scope: Construct, id: string, props: ApiEndpointsProps) {
    super(scope, id);
    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'keepalived EIP pair: VPC interface endpoints, HTTPS from the pair only',
      allowAllOutbound: false,
    });
    const services: [string, ec2.InterfaceVpcEndpointAwsService][] = [
      ['Ec2', ec2.InterfaceVpcEndpointAwsService.EC2],
    ];
    if (props.ssm ?? true) {
      services.push(
        ['Ssm', ec2.InterfaceVpcEndpointAwsService.SSM],
        ['SsmMessages', ec2.InterfaceVpcEndpointAwsService.SSM_MESSAGES],
      );
    }
    this.endpoints = services.map(
      ([name, service]) =>
        new ec2.InterfaceVpcEndpoint(this, name, {
          vpc: props.vpc,
          service,
          privateDnsEnabled: true,
          subnets: { subnets: [...props.subnets] },
          securityGroups: [this.securityGroup],
          // Not open to the whole VPC: the pair's group is allowed explicitly.
          open: false,
        }),
    );
  }

  /** Lets `peer` reach the endpoints over HTTPS. */
  public allowFrom(peer: ec2.ISecurityGroup): void {
    this.securityGroup.addIngressRule(peer, ec2.Port.tcp(443), 'HTTPS from the keepalived pair');
  }
}
