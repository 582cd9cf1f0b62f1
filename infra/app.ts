/**
 * The CDK app `cdk.json` runs (`npx tsx infra/app.ts`): the example PopDrainStack with the
 * mailboxes of config/mailboxes.json, checked by cdk-nag's AwsSolutions pack.
 */
import { createPopDrainApp } from './popdrain-stack.js';

createPopDrainApp().app.synth();
