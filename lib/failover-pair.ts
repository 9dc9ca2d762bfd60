import { Token, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { type FailoverMode, planAddresses } from './addressing';
import { ApiEndpoints } from './api-endpoints';
import { FailoverPolicy } from './failover-policy';
import { VrrpSecurity } from './vrrp-security';

/** The two nodes, in the order the outputs contract names them. */
export const NODE_NAMES = ['Primary', 'Secondary'] as const;
export type NodeName = (typeof NODE_NAMES)[number];

export interface FailoverPairProps {
  readonly vpc: ec2.IVpc;
  /**
   * The pair's subnets: one in same-subnet mode, two in different availability zones in cross-az
   * mode (the primary's first). Their CIDRs must be known at synth time.
   */
  readonly subnets: readonly ec2.ISubnet[];
  /** The Elastic IP the agent moves (eipalloc-...). */
  readonly allocationId: string;
  /**
   * same-subnet: both nodes in one subnet, the EIP on a floating secondary private IP (the VIP).
   * cross-az: nodes in two AZs, no VIP, the EIP follows the active node's primary private IP.
   * @default 'same-subnet'
   */
  readonly mode?: FailoverMode | undefined;
  /**
   * The floating secondary private IP (same-subnet mode only). Must lie in the pair's reserved
   * block and not be a node's address.
   * @default the reserved block's base + 14 (10.0.0.30 in 10.0.0.0/24)
   */
  readonly vip?: string | undefined;
  /**
   * Offset from the start of each subnet of the /28 the pair reserves explicitly (a subnet CIDR
   * reservation) for its addresses: primary = block + 4, secondary = block + 5, VIP = block + 14.
   * @default 16 (10.0.0.16/28 in 10.0.0.0/24: nodes .20 and .21, VIP .30)
   */
  readonly addressBlockOffset?: number | undefined;
  /**
   * @default t3.small
   */
  readonly instanceType?: ec2.InstanceType | undefined;
  /**
   * @default the latest Amazon Linux 2023 for the instance type's architecture, read from the
   * public SSM parameter at deploy time (pin it: see README)
   */
  readonly machineImage?: ec2.IMachineImage | undefined;
  /**
   * The AMI's root device, given an encrypted gp3 volume.
   * @default '/dev/xvda' (Amazon Linux 2023)
   */
  readonly rootDeviceName?: string | undefined;
  /**
   * Root volume size in GiB.
   * @default the AMI's snapshot size
   */
  readonly rootVolumeGiB?: number | undefined;
  /**
   * Access through SSM Session Manager (the SSM managed policy, and its VPC endpoints when
   * apiEndpoints is on).
   * @default true
   */
  readonly ssm?: boolean | undefined;
  /**
   * Create VPC interface endpoints (EC2, and SSM when ssm is on) in the pair's subnets. Turn off
   * when a NAT gateway or public addresses already give both nodes a path to the AWS APIs, or when
   * the VPC already has these endpoints with private DNS.
   * @default true
   */
  readonly apiEndpoints?: boolean | undefined;
  /**
   * An EC2 key pair for SSH (with adminCidr).
   * @default none
   */
  readonly keyName?: string | undefined;
  /**
   * One-minute CloudWatch metrics (charged per metric).
   * @default false
   */
  readonly detailedMonitoring?: boolean | undefined;
  /**
   * DisableApiTermination on both nodes. `cdk destroy` fails while it is on.
   * @default false
   */
  readonly nodeTerminationProtection?: boolean | undefined;
  /** @default [80, 443] */
  readonly servicePorts?: readonly number[] | undefined;
  /** @default ['0.0.0.0/0'] */
  readonly serviceCidrs?: readonly string[] | undefined;
  /** @default [80, 443] */
  readonly backendPorts?: readonly number[] | undefined;
  /** @default the VPC's CIDR */
  readonly backendCidrs?: readonly string[] | undefined;
  /** @default none: no SSH */
  readonly adminCidr?: string | undefined;
}

/** What the outputs and the Ansible inventory need to know about one node. */
export interface PairNode {
  readonly name: NodeName;
  readonly instanceId: string;
  readonly networkInterfaceId: string;
  readonly privateIp: string;
  readonly subnetCidr: string;
  readonly availabilityZone: string;
}

/**
 * The active-passive pair: two instances, each with an explicit primary ENI at a fixed private IP
 * (so that the IAM policy can name the ENIs), IMDSv2 only, encrypted root volumes, the VRRP
 * security group, the instance role with the failover policy, and a path to the EC2 API.
 *
 * Where the VIP and the EIP sit is runtime state owned by keepalived and the agent: neither the
 * VIP's assignment nor the EIP's association is declared here, so no later deploy fights a failover.
 */
export class FailoverPair extends Construct {
  public readonly mode: FailoverMode;
  /** The floating secondary private IP, or undefined in cross-az mode. */
  public readonly vip: string | undefined;
  public readonly nodes: readonly PairNode[];
  public readonly securityGroup: ec2.ISecurityGroup;
  public readonly role: iam.IRole;
  public readonly policy: FailoverPolicy;
  public readonly apiEndpoints: ApiEndpoints | undefined;

  constructor(scope: Construct, id: string, props: FailoverPairProps) {
    super(scope, id);
    this.mode = props.mode ?? 'same-subnet';
    const subnets = props.subnets;
    const [first, second] = subnets;
    if (this.mode === 'cross-az' && first && second) {
      const [azA, azB] = [first.availabilityZone, second.availabilityZone];
      if (!Token.isUnresolved(azA) && !Token.isUnresolved(azB) && azA === azB) {
        throw new Error(
          `cross-az mode needs two subnets in two different availability zones; both are in ${azA}. ` +
            'Give a subnet in another AZ, or use mode same-subnet.',
        );
      }
    }
    const plan = planAddresses({
      mode: this.mode,
      subnetCidrs: subnets.map((s) => s.ipv4CidrBlock),
      blockOffset: props.addressBlockOffset ?? 16,
      vip: props.vip,
    });
    this.vip = plan.vip;

    const ssm = props.ssm ?? true;
    if (
      props.rootVolumeGiB !== undefined &&
      !(Number.isInteger(props.rootVolumeGiB) && props.rootVolumeGiB >= 1)
    ) {
      throw new Error(`rootVolumeGiB must be a whole number of GiB; got ${props.rootVolumeGiB}.`);
    }

    if (props.apiEndpoints ?? true) {
      this.apiEndpoints = new ApiEndpoints(this, 'ApiEndpoints', { vpc: props.vpc, subnets, ssm });
    }
    const security = new VrrpSecurity(this, 'Security', {
      vpc: props.vpc,
      servicePorts: props.servicePorts,
      serviceCidrs: props.serviceCidrs,
      backendPorts: props.backendPorts,
      backendCidrs: props.backendCidrs,
      adminCidr: props.adminCidr,
    });
    this.securityGroup = security.securityGroup;
    this.apiEndpoints?.allowFrom(security.securityGroup);

    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'keepalived EIP pair nodes: the eip-failover agent moves the EIP between them',
      managedPolicies: ssm
        ? [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')]
        : [],
    });
    this.role = role;
    if (ssm) {
      Validations.of(role).acknowledge({
        id: 'AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]',
        reason:
          'AmazonSSMManagedInstanceCore is the AWS-maintained minimum for SSM Session Manager, the ' +
          'default access path (no SSH from the internet). Turn it off with ssm: false.',
      });
    }
    const profile = new iam.InstanceProfile(this, 'InstanceProfile', { role });

    const instanceType =
      props.instanceType ?? ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.SMALL);
    const machineImage =
      props.machineImage ??
      ec2.MachineImage.latestAmazonLinux2023({
        cpuType:
          instanceType.architecture === ec2.InstanceArchitecture.ARM_64
            ? ec2.AmazonLinuxCpuType.ARM_64
            : ec2.AmazonLinuxCpuType.X86_64,
      });
    const imageId = machineImage.getImage(this).imageId;

    const reservations = subnets.map((subnet, i) => {
      const reservation = new ec2.CfnSubnetCidrReservation(
        this,
        i === 0 ? 'Reservation' : `Reservation${i + 1}`,
        {
          subnetId: subnet.subnetId,
          cidr: plan.reservedBlocks[i] ?? '',
          reservationType: 'explicit',
          description:
            'keepalived EIP pair: node addresses and VIP; EC2 never assigns these on its own',
        },
      );
      // cfn-lint 1.51's resource schemas predate AWS::EC2::SubnetCidrReservation (aws-cdk-lib
      // generates it from the current CloudFormation registry), so E3006 "type does not exist" is
      // silenced for this resource only.
      reservation.addMetadata('cfn-lint', { config: { ignore_checks: ['E3006'] } });
      // aws-cdk-lib's synth-time validation (@aws-cdk/core:validateAgainstDefaultRules) carries
      // the same stale schema and reports the type as missing (F3006); CloudFormation has it.
      Validations.of(reservation).acknowledge({
        id: 'CloudFormation-Validate::F3006',
        reason:
          'AWS::EC2::SubnetCidrReservation exists in CloudFormation in every commercial region; the ' +
          'validator bundled with aws-cdk-lib predates it.',
      });
      return reservation;
    });
    for (const endpoint of this.apiEndpoints?.endpoints ?? []) {
      for (const reservation of reservations) endpoint.node.addDependency(reservation);
    }

    const nodeIps = [plan.primaryIp, plan.secondaryIp];
    const nodes: PairNode[] = [];
    const terminationProtection = props.nodeTerminationProtection ?? false;
    const detailedMonitoring = props.detailedMonitoring ?? false;
    NODE_NAMES.forEach((name, i) => {
      const subnet = subnets[i] ?? first;
      const reservation = reservations[i] ?? reservations[0];
      const privateIp = nodeIps[i];
      if (!subnet || !reservation || !privateIp) throw new Error('internal: node without subnet');
      const eni = new ec2.CfnNetworkInterface(this, `${name}Interface`, {
        subnetId: subnet.subnetId,
        privateIpAddress: privateIp,
        groupSet: [security.securityGroup.securityGroupId],
        description: `keepalived EIP pair ${name.toLowerCase()} node: primary interface (device 0)`,
        tags: [{ key: 'Name', value: `keepalived-eip-pair-${name.toLowerCase()}` }],
      });
      eni.node.addDependency(reservation);
      const instance = new ec2.CfnInstance(this, name, {
        imageId,
        instanceType: instanceType.toString(),
        iamInstanceProfile: profile.instanceProfileName,
        networkInterfaces: [{ deviceIndex: '0', networkInterfaceId: eni.ref }],
        metadataOptions: {
          httpTokens: 'required',
          httpEndpoint: 'enabled',
          // The agent runs on the host; one hop keeps containers from borrowing the node's role.
          httpPutResponseHopLimit: 1,
          instanceMetadataTags: 'disabled',
        },
        blockDeviceMappings: [
          {
            deviceName: props.rootDeviceName ?? '/dev/xvda',
            ebs: {
              encrypted: true,
              volumeType: 'gp3',
              deleteOnTermination: true,
              ...(props.rootVolumeGiB !== undefined ? { volumeSize: props.rootVolumeGiB } : {}),
            },
          },
        ],
        monitoring: detailedMonitoring,
        disableApiTermination: terminationProtection,
        ...(props.keyName !== undefined ? { keyName: props.keyName } : {}),
        tags: [{ key: 'Name', value: `keepalived-eip-pair-${name.toLowerCase()}` }],
      });
      if (!detailedMonitoring) {
        Validations.of(instance).acknowledge({
          id: 'AwsSolutions::AwsSolutions-EC28',
          reason:
            'Basic five-minute monitoring by default to keep the pair cheap; failover is detected by ' +
            'VRRP, not CloudWatch. Enable with detailedMonitoring: true.',
        });
      }
      if (!terminationProtection) {
        Validations.of(instance).acknowledge({
          id: 'AwsSolutions::AwsSolutions-EC29',
          reason:
            'Replacing a node is routine in an active-passive pair, and termination protection makes ' +
            'cdk destroy fail; the Elastic IP, which must survive, is retained. Enable with ' +
            'nodeTerminationProtection: true.',
        });
      }
      nodes.push({
        name,
        instanceId: instance.ref,
        networkInterfaceId: eni.ref,
        privateIp,
        subnetCidr: subnet.ipv4CidrBlock,
        availabilityZone: subnet.availabilityZone,
      });
    });
    this.nodes = nodes;

    this.policy = new FailoverPolicy(this, 'FailoverPolicy', {
      role,
      allocationId: props.allocationId,
      networkInterfaceIds: nodes.map((n) => n.networkInterfaceId),
      instanceIds: nodes.map((n) => n.instanceId),
      movesVip: this.mode === 'same-subnet',
    });
  }
}
