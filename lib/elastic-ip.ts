import { RemovalPolicy, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { parseIpv4 } from './addressing';

export interface ElasticIpProps {
  /**
   * Use this existing allocation (eipalloc-...) instead of creating one. The stack never
   * associates, releases or modifies it.
   * @default a new Elastic IP, retained when the stack is deleted
   */
  readonly existingAllocationId?: string | undefined;
  /**
   * The public address of `existingAllocationId`; required with it, since the stack cannot look it
   * up offline (`aws ec2 describe-addresses --allocation-ids eipalloc-...`).
   * @default none
   */
  readonly existingPublicIp?: string | undefined;
}

/**
 * The pair's Elastic IP. It is published in DNS, so deleting the stack must not lose it: a new
 * one is created with DeletionPolicy and UpdateReplacePolicy Retain. No association is declared:
 * where the address points is runtime state owned by keepalived and the agent, and a later
 * `cdk deploy` must never move it back.
 */
export class ElasticIp extends Construct {
  public readonly allocationId: string;
  public readonly publicIp: string;

  constructor(scope: Construct, id: string, props: ElasticIpProps = {}) {
    super(scope, id);
    const { existingAllocationId, existingPublicIp } = props;
    if (existingAllocationId !== undefined) {
      if (
        !Token.isUnresolved(existingAllocationId) &&
        !/^eipalloc-[0-9a-f]{8,17}$/.test(existingAllocationId)
      ) {
        throw new Error(
          `existingAllocationId '${existingAllocationId}' is not an allocation id; it looks like ` +
            'eipalloc-0123456789abcdef0 (aws ec2 describe-addresses shows it as AllocationId).',
        );
      }
      if (existingPublicIp === undefined) {
        throw new Error(
          'existingAllocationId needs existingPublicIp too: the stack cannot look the address up ' +
            `offline. Find it with: aws ec2 describe-addresses --allocation-ids ${existingAllocationId}`,
        );
      }
      if (!Token.isUnresolved(existingPublicIp) && parseIpv4(existingPublicIp) === undefined) {
        throw new Error(
          `existingPublicIp '${existingPublicIp}' is not an IPv4 address such as 203.0.113.7.`,
        );
      }
      this.allocationId = existingAllocationId;
      this.publicIp = existingPublicIp;
      return;
    }
    if (existingPublicIp !== undefined) {
      throw new Error(
        'existingPublicIp is only used with existingAllocationId; give both to import an Elastic IP, ' +
          'or neither to create one.',
      );
    }
    const eip = new ec2.CfnEIP(this, 'Resource', {
      domain: 'vpc',
      tags: [{ key: 'Name', value: 'keepalived-eip-pair' }],
    });
    eip.applyRemovalPolicy(RemovalPolicy.RETAIN);
    this.allocationId = eip.attrAllocationId;
    this.publicIp = eip.attrPublicIp;
  }
}
