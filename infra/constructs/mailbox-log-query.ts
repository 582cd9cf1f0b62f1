/**
 * A saved CloudWatch Logs Insights query for one mailbox: every log line of its runs (the
 * drainers') and of the scheduler about it, newest first, with the Lambda request id. An
 * operator opens it from Logs Insights → Saved queries and replaces the mailbox id.
 *
 * Builds in the given scope (the PopDrain), like the other parts.
 */
import { Names } from 'aws-cdk-lib';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { QueryDefinition, QueryString } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';

/** The placeholder the operator replaces with a mailbox id. */
export const MAILBOX_ID_PLACEHOLDER = 'MAILBOX-ID';

/** The query text (a pure decision, asserted by the infra tests). */
export function mailboxQueryString(): QueryString {
  return new QueryString({
    fields: ['@timestamp', 'level', 'message', 'outcome', 'errorCode', 'report.fetched', 'report.backlogAgeSeconds', 'function_request_id'],
    filterStatements: [`mailboxId = "${MAILBOX_ID_PLACEHOLDER}"`],
    sort: '@timestamp desc',
    limit: 500,
  });
}

export interface MailboxLogQueryProps {
  /** The drainers' and the scheduler's log groups. */
  readonly logGroups: readonly logs.ILogGroup[];
}

export class MailboxLogQuery {
  public readonly queryDefinition: QueryDefinition;
  /** Its name in Logs Insights → Saved queries (a folder per PopDrain). */
  public readonly queryDefinitionName: string;

  constructor(scope: Construct, props: MailboxLogQueryProps) {
    this.queryDefinitionName = `popdrain/${Names.uniqueResourceName(scope, { maxLength: 80, separator: '-' })}/one-mailbox`;
    this.queryDefinition = new QueryDefinition(scope, 'MailboxLogQuery', {
      queryDefinitionName: this.queryDefinitionName,
      queryString: mailboxQueryString(),
      logGroups: [...props.logGroups],
    });
  }
}
