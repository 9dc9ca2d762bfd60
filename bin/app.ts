#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { configFromContext } from '../lib/context';
import { KeepalivedEipPairStack } from '../lib/stack';

const app = new App();
const { stackId, props } = configFromContext(
  (key) => app.node.tryGetContext(key),
  Object.keys(app.node.getAllContext()),
);
// Environment-agnostic on purpose: synth needs no account, no credentials and no lookups; the
// region comes from the deploying profile (AWS_REGION / AWS_PROFILE) at deploy time.
new KeepalivedEipPairStack(app, stackId, props);
// cdk-nag: any unacknowledged AwsSolutions finding fails synth.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
app.synth();
