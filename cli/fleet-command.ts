/**
 * `popdrain fleet …`: operate an AWS deployment whose mailboxes live in the registry
 * (`mailboxSource: 'registry'`, docs/deploy.md §12 and §14): list the mailboxes with their state,
 * add / update / pause / resume / remove one, drain one now, accept a UIDL reset, show recent
 * failures, move the dead-letter queue's requests back. The deployment comes from the stack's
 * outputs or explicit names (fleet-deployment.ts); credentials and region from the SDK's usual
 * sources, `--aws-endpoint` for a stand-in.
 */
import { randomUUID } from 'node:crypto';
import { MAX_CONFIG_FILE_BYTES, readTextFileBounded } from '../lib/drain/read-bounded.js';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDbLedger } from '../lib/adapters/aws/dynamodb-ledger.js';
import { DynamoDbMailboxRegistry } from '../lib/adapters/aws/dynamodb-registry.js';
import { withHttpTimeouts } from '../lib/adapters/aws/http-timeouts.js';
import { ConfigError } from '../lib/drain/config.js';
import type { MailboxState } from '../lib/drain/ports.js';
import { registryEntriesOfFile } from '../lib/drain/registry-mailbox.js';
import { DEFAULT_REQUEST_CLAIM_TTL_SECONDS, DEFAULT_REQUEST_MARKER_TTL_SECONDS, deduplicationId, type DrainRequest } from '../lambdas/schedule.js';
import { DynamoDbRequestMarkers } from '../lib/adapters/aws/dynamodb-request-marker.js';
import { EXIT, UsageError, type ExitCode } from './exit-codes.js';
import { resolveDeployment, stackOutputs, type FleetDeployment } from './fleet-deployment.js';
import { withoutUndefined } from '../lib/drain/without-undefined.js';

/** How long a drain-now request holds the mailbox: the deployment's default visibility timeout (6 x 15 min). */
/** The manual request's claim before it is sent (as the scheduler's short claim). */
export const DEFAULT_MANUAL_MARKER_TTL_SECONDS = DEFAULT_REQUEST_CLAIM_TTL_SECONDS;

export interface FleetOptions {
  'stack-outputs'?: string;
  stack?: string;
  table?: string;
  'queue-url'?: string;
  'dlq-url'?: string;
  'aws-region'?: string;
  'aws-endpoint'?: string;
  json?: boolean;
}

export interface FleetIo {
  out: (text: string) => void;
  now: () => number;
}

const when = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** One mailbox's row of `fleet list`. */
export function fleetRow(id: string, paused: boolean, state: MailboxState | undefined, now: number) {
  const marker = state?.requestMarker;
  return {
    mailboxId: id,
    paused,
    lastSuccessAt: when(state?.lastSuccessAt),
    backlogSince: when(state?.backlogSince),
    queued: marker !== undefined && marker.expiresAt > now,
    nextAttemptAt: state?.nextAttemptAt !== undefined && state.nextAttemptAt > now ? when(state.nextAttemptAt) : null,
    failureStreak: state?.failureStreak ?? 0,
    lastFailure: state?.lastFailure === undefined ? null : { at: when(state.lastFailure.at), code: state.lastFailure.code, message: state.lastFailure.message },
    uidlResetTripped: state?.uidlResetTrippedAt !== undefined && state.acceptUidlReset !== true,
  };
}

function readJson(path: string): unknown {
  try {
    // Bounded as it is read: a mailbox entry or file is small, /dev/zero or a pipe need not be.
    return JSON.parse(readTextFileBounded(path === '-' ? '/dev/stdin' : path, MAX_CONFIG_FILE_BYTES));
  } catch (error) {
    throw new UsageError(`cannot read ${path === '-' ? 'stdin' : path} as JSON: ${(error as Error).message}`);
  }
}

function one(positionals: string[], what: string): string {
  if (positionals.length !== 1) throw new UsageError(`fleet ${what} takes one mailbox id`);
  return positionals[0]!;
}

export function deploymentOf(o: FleetOptions): FleetDeployment {
  const outputs = o['stack-outputs'] === undefined ? {} : stackOutputs(readJson(o['stack-outputs']), o.stack);
  return resolveDeployment(o, outputs);
}

export async function runFleet(positionals: string[], o: FleetOptions, io: FleetIo = { out: (t) => process.stdout.write(t), now: Date.now }): Promise<ExitCode> {
  const [sub, ...args] = positionals;
  if (sub === undefined) throw new UsageError('fleet needs a subcommand: list, add, update, pause, resume, remove, drain-now, accept-uidl-reset, failures, redrive-dlq');
  const d = deploymentOf(o);
  const config = withHttpTimeouts({
    ...withoutUndefined({ region: o['aws-region'], endpoint: o['aws-endpoint'] }),
  });
  const dynamo = new DynamoDBClient(config);
  const sqs = new SQSClient(config);
  const registry = new DynamoDbMailboxRegistry(dynamo, d.table, io.now);
  const ledger = new DynamoDbLedger({ client: dynamo, tableName: d.table });
  const print = (value: unknown, text: string): void => io.out(o.json === true ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);
  const known = async (id: string) => {
    const entry = await registry.get(id);
    if (entry === undefined) throw new UsageError(`no mailbox "${id}" in the registry of ${d.table}`);
    return entry;
  };
  try {
    switch (sub) {
      case 'list':
      case 'failures': {
        const { entries, problems } = await registry.list();
        const states = await ledger.mailboxStates(entries.map((e) => e.mailbox.id));
        let rows = entries.map((e) => fleetRow(e.mailbox.id, e.paused, states.get(e.mailbox.id), io.now()));
        if (sub === 'failures') rows = rows.filter((r) => r.lastFailure !== null).sort((a, b) => String(b.lastFailure!.at).localeCompare(String(a.lastFailure!.at)));
        const lines = rows.map((r) =>
          sub === 'failures'
            ? `${r.mailboxId}  ${r.lastFailure!.at}  ${r.lastFailure!.code}  streak ${r.failureStreak}  ${r.nextAttemptAt === null ? '' : `next try ${r.nextAttemptAt}  `}${r.lastFailure!.message}`
            : `${r.mailboxId}  ${r.paused ? 'PAUSED' : 'active'}  last success ${r.lastSuccessAt ?? 'never'}${r.backlogSince === null ? '' : `  backlog since ${r.backlogSince}`}${r.queued ? '  queued' : ''}${r.nextAttemptAt === null ? '' : `  backing off until ${r.nextAttemptAt}`}${r.failureStreak > 0 ? `  failures ${r.failureStreak} (${r.lastFailure?.code})` : ''}${r.uidlResetTripped ? '  UIDL RESET TRIPPED' : ''}`,
        );
        for (const p of problems) lines.push(`invalid registry entry (not scheduled): ${p}`);
        print(sub === 'list' ? { mailboxes: rows, invalid: problems } : rows, lines.length === 0 ? (sub === 'list' ? 'the registry is empty' : 'no failures') : lines.join('\n'));
        return EXIT.OK;
      }
      case 'add':
      case 'update': {
        if (args.length !== 1) throw new UsageError(`fleet ${sub} takes one JSON file (a mailbox, or a mailbox file), or - for stdin`);
        const raw = readJson(args[0]!);
        const entries = raw !== null && typeof raw === 'object' && 'mailboxes' in raw ? registryEntriesOfFile(raw) : [raw];
        const done: string[] = [];
        for (const entry of entries) {
          const id = String((entry as { id?: unknown }).id);
          if (sub === 'update') await known(id);
          try {
            if (!(await registry.put(entry, { ifAbsent: sub === 'add' }))) throw new UsageError(`mailbox "${id}" is already in the registry (use fleet update)`);
          } catch (error) {
            if (error instanceof ConfigError) throw new UsageError(error.message);
            throw error;
          }
          done.push(id);
        }
        print({ [sub === 'add' ? 'added' : 'updated']: done }, `${sub === 'add' ? 'added' : 'updated'}: ${done.join(', ')}`);
        return EXIT.OK;
      }
      case 'pause':
      case 'resume': {
        const id = one(args, sub);
        if (!(await registry.setPaused(id, sub === 'pause'))) throw new UsageError(`no mailbox "${id}" in the registry of ${d.table}`);
        print({ mailboxId: id, paused: sub === 'pause' }, sub === 'pause' ? `${id}: paused (a run in progress finishes; no new one starts)` : `${id}: resumed (its next due tick enqueues it)`);
        return EXIT.OK;
      }
      case 'remove': {
        const id = one(args, sub);
        if (!(await registry.remove(id))) throw new UsageError(`no mailbox "${id}" in the registry of ${d.table}`);
        print({ mailboxId: id, removed: true }, `${id}: removed from the registry (its ledger and stored messages are kept)`);
        return EXIT.OK;
      }
      case 'drain-now': {
        const id = one(args, sub);
        const entry = await known(id);
        if (entry.paused) throw new UsageError(`mailbox "${id}" is paused (fleet resume ${id} first)`);
        if (d.queueUrl === undefined) throw new UsageError('fleet drain-now needs the queue: --stack-outputs FILE or --queue-url URL');
        // The stack outputs name the VPC queue's ARN only; the default drainer cannot reach a VPC-only server.
        if (entry.mailbox.placement === 'vpc') throw new UsageError(`mailbox "${id}" is drained in the VPC: its next due tick enqueues it (fleet drain-now sends to the default queue only)`);
        const now = io.now();
        const token = `manual:${new Date(now).toISOString()}:${randomUUID().slice(0, 8)}`;
        if (!(await ledger.claimRequestMarker(id, { token, expiresAt: now + DEFAULT_MANUAL_MARKER_TTL_SECONDS * 1000 }, now))) {
          print({ mailboxId: id, enqueued: false }, `${id}: a request is already waiting or running; nothing sent`);
          return EXIT.BUSY;
        }
        // Asked for by an operator: the failure backoff no longer holds (a success would reset it anyway).
        await ledger.updateMailboxState(id, { nextAttemptAt: null });
        const request: DrainRequest = { mailboxId: id, tick: new Date(now).toISOString(), marker: token };
        await sqs.send(new SendMessageCommand({ QueueUrl: d.queueUrl, MessageGroupId: id, MessageDeduplicationId: deduplicationId([id, token]), MessageBody: JSON.stringify(request) }));
        // Sent: the marker lives as long as the request can wait, as the scheduler's do (a drainer
        // that already released it is left alone: extend moves only a marker still this token's).
        await new DynamoDbRequestMarkers(dynamo, d.table).extend(id, token, now + DEFAULT_REQUEST_MARKER_TTL_SECONDS * 1000);
        print({ mailboxId: id, enqueued: true }, `${id}: drain request sent`);
        return EXIT.OK;
      }
      case 'accept-uidl-reset': {
        const id = one(args, sub);
        const state = await ledger.getMailboxState(id);
        if (state.uidlResetTrippedAt === undefined) throw new UsageError(`the UIDL-reset guard of "${id}" has not tripped`);
        await ledger.updateMailboxState(id, { acceptUidlReset: true });
        print({ mailboxId: id, acceptUidlReset: true }, `${id}: UIDL reset accepted; its next run re-fetches what looks new`);
        return EXIT.OK;
      }
      case 'redrive-dlq': {
        if (d.queueUrl === undefined || d.deadLetterQueueUrl === undefined) throw new UsageError('fleet redrive-dlq needs both queues: --stack-outputs FILE, or --queue-url and --dlq-url');
        let moved = 0;
        for (;;) {
          const { Messages = [] } = await sqs.send(
            new ReceiveMessageCommand({ QueueUrl: d.deadLetterQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, AttributeNames: ['All'], MessageSystemAttributeNames: ['MessageGroupId', 'MessageDeduplicationId'] }),
          );
          if (Messages.length === 0) break;
          for (const m of Messages) {
            const group = m.Attributes?.MessageGroupId ?? (JSON.parse(m.Body ?? '{}') as { mailboxId?: string }).mailboxId ?? 'redriven';
            const dedup = deduplicationId([m.Attributes?.MessageDeduplicationId ?? m.MessageId ?? '', 'redrive', m.MessageId ?? '']);
            await sqs.send(new SendMessageCommand({ QueueUrl: d.queueUrl, MessageGroupId: group, MessageDeduplicationId: dedup, MessageBody: m.Body ?? '' }));
          }
          await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: d.deadLetterQueueUrl, Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
          moved += Messages.length;
        }
        print({ moved }, `moved ${moved} request(s) from the dead-letter queue back to the drain queue`);
        return EXIT.OK;
      }
      default:
        throw new UsageError(`unknown fleet subcommand "${sub}" (list, add, update, pause, resume, remove, drain-now, accept-uidl-reset, failures, redrive-dlq)`);
    }
  } finally {
    dynamo.destroy();
    sqs.destroy();
  }
}
