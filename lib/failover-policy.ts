import { Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

export interface FailoverPolicyProps {
  /** The nodes' role. */
  readonly role: iam.IRole;
  /** The Elastic IP's allocation id (eipalloc-...). */
  readonly allocationId: string;
  /** The pair's two primary ENIs (device index 0). */
  readonly networkInterfaceIds: readonly string[];
  /** The pair's two instances. */
  readonly instanceIds: readonly string[];
  /**
   * Whether the agent moves a floating secondary private IP (same-subnet mode).
   * @default true
   */
  readonly movesVip?: boolean;
}

/**
 * Exactly the EC2 calls the eip-failover agent makes, and no mutating action on `*`:
 *
 * - `Describe*` (addresses, network interfaces) support no resource-level permissions, so they
 *   take `*`; they only read.
 * - `ec2:AssociateAddress` evaluates the elastic-ip, the network-interface and the instance (the
 *   Service Authorization Reference lists all three). It is scoped to this allocation and to the
 *   pair's two ENIs and two instances: with AllowReassociation the address is taken from the peer,
 *   so the peer's resources are in the list too.
 * - `ec2:AssignPrivateIpAddresses` evaluates the network-interface only (required); scoped to the
 *   pair's two ENIs, which covers the peer's ENI the VIP is taken from with AllowReassignment.
 *   Only in same-subnet mode: cross-az has no VIP.
 *
 * The same statements authorize the agent's `check` command (AssociateAddress with DryRun; EC2
 * has no DryRun for AssignPrivateIpAddresses, so check does not send it).
 */
export class FailoverPolicy extends Construct {
  public readonly policy: iam.Policy;

  constructor(scope: Construct, id: string, props: FailoverPolicyProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const arn = (resource: string, name: string) =>
      stack.formatArn({ service: 'ec2', resource, resourceName: name });
    const eniArns = props.networkInterfaceIds.map((eni) => arn('network-interface', eni));
    const instanceArns = props.instanceIds.map((instance) => arn('instance', instance));

    const statements = [
      new iam.PolicyStatement({
        sid: 'ReadAddressesAndInterfaces',
        actions: ['ec2:DescribeAddresses', 'ec2:DescribeNetworkInterfaces'],
        resources: ['*'],
      }),
      new iam.PolicyStatement({
        sid: 'AssociateThisElasticIpWithThePair',
        actions: ['ec2:AssociateAddress'],
        resources: [arn('elastic-ip', props.allocationId), ...eniArns, ...instanceArns],
      }),
    ];
    if (props.movesVip ?? true) {
      statements.push(
        new iam.PolicyStatement({
          sid: 'MoveTheVipBetweenThePairsInterfaces',
          actions: ['ec2:AssignPrivateIpAddresses'],
          resources: eniArns,
        }),
      );
    }

    this.policy = new iam.Policy(this, 'Resource', { statements, roles: [props.role] });
    Validations.of(this.policy).acknowledge({
      id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
      reason:
        'ec2:DescribeAddresses and ec2:DescribeNetworkInterfaces support no ' +
        'resource-level permissions (Service Authorization Reference), so they need Resource "*"; ' +
        'they are read-only. Every mutating action is scoped to this EIP and the pair ENIs/instances.',
    });
  }
}
