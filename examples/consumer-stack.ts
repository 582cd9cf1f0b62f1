/**
 * The example consumer's infrastructure: a rule on popdrain's bus for `Email Stored` events
 * from one mailbox, targeting the handler in examples/consumer.ts, with read access to the
 * messages. Add it to your own app next to the PopDrain construct.
 */
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import type { PopDrain } from '../infra/constructs/pop-drain.js';

export class ExampleConsumer extends Construct {
  constructor(scope: Construct, id: string, popdrain: PopDrain, mailboxId: string) {
    super(scope, id);
    const fn = new NodejsFunction(this, 'Handler', {
      entry: new URL('./consumer.ts', import.meta.url).pathname,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 512,
      timeout: Duration.minutes(1),
    });
    popdrain.bucket.grantRead(fn);
    new events.Rule(this, 'EmailStored', {
      eventBus: popdrain.eventBus,
      eventPattern: { source: ['popdrain'], detailType: ['Email Stored'], detail: { mailboxId: [mailboxId] } },
      targets: [new targets.LambdaFunction(fn, { retryAttempts: 4 })],
    });
  }
}
