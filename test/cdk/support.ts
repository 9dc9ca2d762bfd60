import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import cdkJson from '../../cdk.json' with { type: 'json' };
import { KeepalivedEipPairStack, type KeepalivedEipPairStackProps } from '../../lib/stack';

export interface Synthesized {
  readonly app: App;
  readonly stack: KeepalivedEipPairStack;
  readonly template: Template;
}

/**
 * A fresh App with cdk.json's feature flags (what `cdk synth` passes), the stack, and cdk-nag's
 * AwsSolutions pack: `app.synth()` throws on any unacknowledged finding, so every test that uses
 * this also checks that the configuration under test passes cdk-nag.
 */
export function synth(props: KeepalivedEipPairStackProps = {}): Synthesized {
  const app = new App({ context: cdkJson.context });
  const stack = new KeepalivedEipPairStack(app, 'KeepalivedEipPair', props);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  app.synth();
  return { app, stack, template: Template.fromStack(stack) };
}

/** A CloudFormation statement as synthesized. */
export interface Statement {
  readonly Sid?: string;
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
  readonly Condition?: unknown;
}

/** Every statement of every AWS::IAM::Policy in the template. */
export function policyStatements(template: Template): Statement[] {
  return Object.values(template.findResources('AWS::IAM::Policy')).flatMap(
    (policy) => policy.Properties.PolicyDocument.Statement as Statement[],
  );
}

export function actionsOf(statement: Statement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

export function resourcesOf(statement: Statement): unknown[] {
  return Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
}

/** The logical id of the only resource of `type` whose properties match `props`. */
export function logicalId(template: Template, type: string, props: object = {}): string {
  const found = Object.keys(template.findResources(type, { Properties: props }));
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0] as string;
}

/** The ARN CloudFormation builds for an EC2 resource of `kind` whose id is `idValue`. */
export function ec2Arn(kind: string, idValue: unknown): unknown {
  return {
    'Fn::Join': [
      '',
      [
        'arn:',
        { Ref: 'AWS::Partition' },
        ':ec2:',
        { Ref: 'AWS::Region' },
        ':',
        { Ref: 'AWS::AccountId' },
        `:${kind}/`,
        idValue,
      ],
    ],
  };
}

export const EXISTING_VPC = {
  vpcId: 'vpc-0123456789abcdef0',
  vpcCidr: '10.1.0.0/16',
  subnets: [
    {
      subnetId: 'subnet-0aaaaaaaaaaaaaaa1',
      cidr: '10.1.0.0/24',
      availabilityZone: 'eu-central-1a',
    },
    {
      subnetId: 'subnet-0bbbbbbbbbbbbbbb2',
      cidr: '10.1.1.0/24',
      availabilityZone: 'eu-central-1b',
    },
  ],
} as const;
