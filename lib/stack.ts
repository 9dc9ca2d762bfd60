import { Aws, CfnOutput, CfnResource, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type { Construct } from 'constructs';
import { parseCidr } from './addressing';
import { ElasticIp, type ElasticIpProps } from './elastic-ip';
import { FailoverPair, type FailoverPairProps } from './failover-pair';
import contract from './outputs-contract.json' with { type: 'json' };

/** The default stack id, the top-level key of the outputs file. */
export const DEFAULT_STACK_ID = 'KeepalivedEipPair';

/** An existing VPC, described fully so that synth needs no lookup (no account, no network). */
export interface ExistingVpc {
  /** vpc-... */
  readonly vpcId: string;
  /** The VPC's primary IPv4 CIDR (the default backend CIDR). */
  readonly vpcCidr: string;
  /** One subnet (same-subnet) or two in different AZs (cross-az), the primary's first. */
  readonly subnets: readonly ExistingSubnet[];
}

export interface ExistingSubnet {
  /** subnet-... */
  readonly subnetId: string;
  /** Its IPv4 CIDR: the pair's addresses are placed in it at synth time. */
  readonly cidr: string;
  /** Its availability zone, e.g. eu-central-1a. */
  readonly availabilityZone: string;
  /** Its route table (rtb-...), if known. */
  readonly routeTableId?: string | undefined;
}

export interface KeepalivedEipPairStackProps
  extends StackProps,
    ElasticIpProps,
    Omit<FailoverPairProps, 'vpc' | 'subnets' | 'allocationId'> {
  /**
   * Place the pair in this existing VPC instead of creating one.
   * @default a new VPC: two AZs, public /24 subnets, no NAT gateway, an S3 gateway endpoint
   */
  readonly existingVpc?: ExistingVpc | undefined;
  /**
   * The new VPC's CIDR (ignored with existingVpc).
   * @default '10.0.0.0/16'
   */
  readonly vpcCidr?: string | undefined;
}

/**
 * The keepalived + Elastic IP pair: the VPC (new or existing), the Elastic IP, the pair, and the
 * outputs the Ansible inventory reads (keys from lib/outputs-contract.json).
 */
export class KeepalivedEipPairStack extends Stack {
  public readonly pair: FailoverPair;
  public readonly elasticIp: ElasticIp;

  constructor(scope: Construct, id: string, props: KeepalivedEipPairStackProps = {}) {
    super(scope, id, props);
    const mode = props.mode ?? 'same-subnet';
    const subnetCount = mode === 'same-subnet' ? 1 : 2;

    let vpc: ec2.IVpc;
    let subnets: ec2.ISubnet[];
    if (props.existingVpc) {
      const existing = props.existingVpc;
      if (existing.subnets.length < subnetCount) {
        throw new Error(
          `${mode} mode needs ${subnetCount} subnet(s) in existingVpc.subnets; got ${existing.subnets.length}.` +
            (mode === 'cross-az' ? ' Give two subnets in two availability zones.' : ''),
        );
      }
      if (!parseCidr(existing.vpcCidr)) {
        throw new Error(
          `existingVpc.vpcCidr '${existing.vpcCidr}' is not an IPv4 CIDR such as 10.0.0.0/16.`,
        );
      }
      const chosen = existing.subnets.slice(0, subnetCount);
      vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
        vpcId: existing.vpcId,
        vpcCidrBlock: existing.vpcCidr,
        availabilityZones: [...new Set(chosen.map((s) => s.availabilityZone))],
      });
      subnets = chosen.map((s, i) => {
        const subnet = ec2.Subnet.fromSubnetAttributes(this, `Subnet${i + 1}`, {
          subnetId: s.subnetId,
          ipv4CidrBlock: s.cidr,
          availabilityZone: s.availabilityZone,
          ...(s.routeTableId !== undefined ? { routeTableId: s.routeTableId } : {}),
        });
        if (s.routeTableId === undefined) {
          Validations.of(subnet).acknowledge({
            id: 'Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId',
            reason:
              'The pair adds no routes and its interface endpoints need none; the route table id ' +
              'is optional in existingVpc for that reason.',
          });
        }
        return subnet;
      });
    } else {
      const newVpc = new ec2.Vpc(this, 'Vpc', {
        ipAddresses: ec2.IpAddresses.cidr(props.vpcCidr ?? '10.0.0.0/16'),
        maxAzs: 2,
        natGateways: 0,
        subnetConfiguration: [
          // Public: the active node serves through the EIP. No auto-assigned public IPs: each node's
          // primary ENI is created explicitly, and the passive node reaches AWS through endpoints.
          {
            name: 'Public',
            subnetType: ec2.SubnetType.PUBLIC,
            cidrMask: 24,
            mapPublicIpOnLaunch: false,
          },
        ],
        // Free: lets dnf reach the Amazon Linux repositories (hosted on S3) from either node.
        gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
      });
      Validations.of(newVpc).acknowledge({
        id: 'AwsSolutions::AwsSolutions-VPC7',
        reason:
          'Flow logs are left to the account baseline (they cost per GB ingested); the pair itself ' +
          'only needs VRRP between two known peers. Add them with vpc.addFlowLog if wanted.',
      });
      // The provider behind restrictDefaultSecurityGroup (aws-cdk-lib's own code) declares both a
      // DependsOn and a GetAtt on its role; cfn-lint's W3005 flags the redundancy. Silenced there only.
      const provider = this.node.tryFindChild('Custom::VpcRestrictDefaultSGCustomResourceProvider');
      const handler = provider?.node.tryFindChild('Handler');
      if (handler instanceof CfnResource) {
        handler.addMetadata('cfn-lint', { config: { ignore_checks: ['W3005'] } });
      }
      // aws-cdk-lib's Vpc declares vpnGatewayId without `| undefined`, which IVpc's optional
      // property rejects under exactOptionalPropertyTypes; the class does implement the interface.
      vpc = newVpc as ec2.IVpc;
      subnets = newVpc.publicSubnets.slice(0, subnetCount);
    }

    this.elasticIp = new ElasticIp(this, 'ElasticIp', {
      existingAllocationId: props.existingAllocationId,
      existingPublicIp: props.existingPublicIp,
    });

    this.pair = new FailoverPair(this, 'Pair', {
      ...props,
      vpc,
      subnets,
      allocationId: this.elasticIp.allocationId,
    });

    const pairOutputs: Record<keyof typeof contract.pair, string> = {
      AllocationId: this.elasticIp.allocationId,
      PublicIp: this.elasticIp.publicIp,
      Mode: this.pair.mode,
      Vip: this.pair.vip ?? 'none',
      Region: Aws.REGION,
    };
    for (const [key, value] of Object.entries(pairOutputs)) {
      new CfnOutput(this, key, { value, description: describe(contract.pair, key) });
    }
    for (const node of this.pair.nodes) {
      const nodeOutputs: Record<keyof typeof contract.perNode, string> = {
        InstanceId: node.instanceId,
        NetworkInterfaceId: node.networkInterfaceId,
        PrivateIp: node.privateIp,
        SubnetCidr: node.subnetCidr,
        AvailabilityZone: node.availabilityZone,
      };
      for (const [key, value] of Object.entries(nodeOutputs)) {
        new CfnOutput(this, `${node.name}${key}`, {
          value,
          description: `${node.name}: ${describe(contract.perNode, key)}`,
        });
      }
    }
  }
}

function describe(section: Record<string, string>, key: string): string {
  return section[key] ?? key;
}
