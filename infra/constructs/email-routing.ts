/**
 * Routing `Email Stored` events to a consumer: one rule on popdrain's bus per target, matching
 * `source: popdrain`, `detail-type: Email Stored` and, optionally, some mailboxes.
 */
import * as events from 'aws-cdk-lib/aws-events';
import type { Construct } from 'constructs';
import { EVENT_SOURCE } from './drain-events.js';

export interface EmailStoredRuleProps {
  readonly eventBus: events.IEventBus;
  readonly target: events.IRuleTarget;
  /** Only these mailboxes' events. @default - every mailbox */
  readonly mailboxIds?: readonly string[];
}

/** The event pattern of `Email Stored` events (of some mailboxes). A pure decision. */
export function emailStoredPattern(mailboxIds?: readonly string[]): events.EventPattern {
  return {
    source: [EVENT_SOURCE],
    detailType: ['Email Stored'],
    ...(mailboxIds === undefined ? {} : { detail: { mailboxId: [...mailboxIds] } }),
  };
}

export function emailStoredRule(scope: Construct, id: string, props: EmailStoredRuleProps): events.Rule {
  if (props.mailboxIds !== undefined && props.mailboxIds.length === 0) throw new Error(`PopDrain: onEmailStored("${id}"): mailboxIds is empty`);
  return new events.Rule(scope, id, {
    eventBus: props.eventBus,
    description: 'popdrain: Email Stored events to a consumer',
    eventPattern: emailStoredPattern(props.mailboxIds),
    targets: [props.target],
  });
}
