/**
 * The cost model of a deployment: what 1,000 mailboxes cost a month on AWS, line by line, from
 * the assumptions and list prices below (us-east-1, free tiers ignored). docs/deploy.md §9
 * shows `renderCostTable()` verbatim and the README quotes `headlineTotal()`; a unit test
 * (test/unit/cost-model.test.ts) recomputes both from these constants, so they cannot drift.
 *
 * Pure functions, no CDK: the figures follow the construct's defaults (a drainer of 1,024 MB
 * with 2 GiB /tmp taking batches of 10 drain requests, logs kept 3 months, tracing on, the
 * fixed alarms and four Contributor Insights rules, aggregate metrics only).
 *
 * The drainer's compute is billed per invocation, by its wall time: an invocation drains the
 * mailboxes of its batch at once (lambdas/drain-batch.ts), and a run is almost all waiting on
 * the network, so a batch takes about as long as its slowest run. `npm run bench:invocation`
 * (docs/benchmarks.md) measured, at a 40 ms POP3 round trip on a loaded 2-core VM, medians of
 * 0.4-0.6 s for a batch of 1, 0.5-1.1 s for 5 (at most 1.6 s) and 1.0-1.3 s for 10 (at most
 * 2.6 s, once); the model bills 2 s per invocation and assumes batches half full.
 */

export const ASSUMPTIONS = {
  mailboxes: 1000,
  intervalMinutes: 5,
  daysPerMonth: 30,
  messagesPerMailboxPerDay: 50,
  averageMessageKB: 75,
  /** The event source's batch size (drainerBatchSize). */
  drainerBatchSize: 10,
  /**
   * Drain requests per invocation on average. The scheduler enqueues every due mailbox in one
   * burst per tick, so the pollers find full batches while the burst lasts; half full allows for
   * the tail of the burst and for continuations, which arrive alone.
   */
  averageBatchFill: 5,
  /** Billed wall time of one invocation: above every batch of 5 bench:invocation measured. */
  drainerInvocationSeconds: 2,
  drainerMemoryGB: 1,
  drainerEphemeralGB: 2,
  schedulerRunSeconds: 1,
  schedulerMemoryGB: 0.5,
  /** Log lines and EMF records per drainer run. */
  logKBPerRun: 4,
  logRetentionMonths: 3,
  /** SQS requests per run: the scheduler's batched send (1/10). */
  sqsRequestsPerRun: 0.1,
  /** SQS requests per drainer invocation: the poller's receive and its batched delete. */
  sqsRequestsPerInvocation: 2,
  /** Lambda's SQS pollers, long-polling while the queue is idle. */
  sqsIdlePollsPerMonth: 1_000_000,
  /** Ledger writes per run (lease, state, release) and per message (record, announced, deleted). */
  writeUnitsPerRun: 3,
  writeUnitsPerMessage: 9,
  /** Ledger reads per run (lease, state) and per mailbox and tick by the scheduler (state, lease). */
  readUnitsPerRun: 2,
  schedulerReadUnitsPerMailboxTick: 2,
  /**
   * With `keep`, a run reads the mailbox's done set (lib/adapters/aws/dynamodb-done-set.ts):
   * 16 items, eventually consistent (half a unit per 4 KB of each), of 26 bytes per kept message
   * (a 16-character UIDL), then one consistent read per UIDL the set does not answer yet: the
   * new ones and those waiting for the next flush (at most 32, half that on average). A flush
   * rewrites the shards its 32 entries fall in: one write unit per KB of each.
   */
  doneSetShards: 16,
  doneSetBytesPerKeptMessage: 26,
  doneSetFlushEntries: 32,
  /** Ledger item size, and how long the items of deleted messages live (ledgerRetentionDays). */
  ledgerItemKB: 2,
  ledgerRetentionDays: 30,
  /** `Email Stored` size in the archive. */
  archivedEventKB: 2,
  /** X-Ray's default sampling: the first request each second, then 5 %. */
  xrayReservoirPerSecond: 1,
  xraySampledFraction: 0.05,
  insightRules: 4,
  /** Alarm metrics: 5 single-metric alarms, 19 error codes in 4 class alarms, 2 throttles, the schedule DLQ. */
  alarmMetrics: 27,
  dashboards: 1,
  /** Aggregate custom metrics: 8 per run, 4 more from the scheduler, ~10 error codes seen. */
  aggregateMetrics: 22,
  perMailboxMetricNames: 4,
  /**
   * With `customerManagedKey`: who asks KMS for data keys, each about once per 5-minute cache
   * period (SQS data-key reuse, DynamoDB's and CloudWatch Logs' caches): ~40 drainer and
   * scheduler execution environments warm at a time, the SQS pollers, the table, the log groups;
   * plus S3 (Bucket Key: one request per bucket key period) and the archive.
   */
  kmsCachingCallers: 60,
  kmsServicesPerCaller: 3,
} as const;

/** List prices, us-east-1, USD. */
export const PRICES = {
  lambdaGBSecondArm: 0.0000133334,
  lambdaPerMillionRequests: 0.2,
  lambdaEphemeralGBSecond: 0.0000000309,
  sqsFifoPerMillion: 0.5,
  dynamoPerMillionWriteUnits: 0.625,
  dynamoPerMillionReadUnits: 0.125,
  dynamoStorageGBMonth: 0.25,
  dynamoPitrGBMonth: 0.2,
  s3PutPer1000: 0.005,
  s3StandardGBMonth: 0.023,
  eventBridgePerMillionEvents: 1.0,
  archiveIngestGB: 0.1,
  archiveStorageGBMonth: 0.023,
  logsIngestGB: 0.5,
  logsStorageGBMonth: 0.03,
  xrayPerMillionTraces: 5.0,
  insightRuleMonth: 0.5,
  insightPerMillionEvents: 0.02,
  alarmMetricMonth: 0.1,
  dashboardMonth: 3.0,
  customMetricMonth: 0.3,
  secretMonth: 0.4,
  secretsPer10000Calls: 0.05,
  kmsKeyMonth: 1.0,
  kmsPer10000Requests: 0.03,
} as const;

export type DeletePolicy = 'delete' | 'keep';

/** One line of the table: its figure per scenario. */
export interface CostLine {
  readonly item: string;
  readonly basis: string;
  readonly cost: (policy: DeletePolicy, month: number) => number;
}

const A = ASSUMPTIONS;
const P = PRICES;
const RUNS = (A.mailboxes * 24 * 60 * A.daysPerMonth) / A.intervalMinutes;
/** Drainer invocations a month: the runs, `averageBatchFill` to an invocation. */
export const INVOCATIONS = RUNS / A.averageBatchFill;
const TICKS = (24 * 60 * A.daysPerMonth) / A.intervalMinutes;
const MESSAGES = A.mailboxes * A.messagesPerMailboxPerDay * A.daysPerMonth;
const STORED_GB = (MESSAGES * A.averageMessageKB) / 1e6;
const SECONDS = A.daysPerMonth * 86_400;
const M = 1e6;

/** Messages a `keep` mailbox holds on the server on average during `month` (1-based). */
export function keptMessagesPerMailbox(month: number): number {
  return A.messagesPerMailboxPerDay * A.daysPerMonth * (month - 0.5);
}

/** KB of one done-set shard of a `keep` mailbox during `month`. */
function doneShardKB(month: number): number {
  return (keptMessagesPerMailbox(month) * A.doneSetBytesPerKeptMessage) / A.doneSetShards / 1024;
}

/** Read units of one `keep` run's lookup: the done set, then the UIDLs it does not answer. */
export function keepLookupReadUnits(month: number): number {
  const doneSet = A.doneSetShards * 0.5 * Math.max(1, Math.ceil(doneShardKB(month) / 4));
  const newPerRun = (A.messagesPerMailboxPerDay * A.intervalMinutes) / (24 * 60);
  return doneSet + newPerRun + A.doneSetFlushEntries / 2;
}

/** Ledger read units a month: per run, the scheduler's, and with `keep` the done-set lookup. */
export function ledgerReadUnits(policy: DeletePolicy, month: number): number {
  const base = RUNS * A.readUnitsPerRun + TICKS * A.mailboxes * A.schedulerReadUnitsPerMailboxTick;
  return policy === 'keep' ? base + RUNS * keepLookupReadUnits(month) : base;
}

/** Done-set write units a month (`keep`): a flush per 32 kept messages, each touched shard rewritten. */
export function doneSetWriteUnits(policy: DeletePolicy, month: number): number {
  if (policy !== 'keep') return 0;
  const shardsTouched = A.doneSetShards * (1 - (1 - 1 / A.doneSetShards) ** A.doneSetFlushEntries);
  return (MESSAGES / A.doneSetFlushEntries) * shardsTouched * Math.max(1, Math.ceil(doneShardKB(month)));
}

function ledgerGB(policy: DeletePolicy, month: number): number {
  const items = policy === 'delete' ? MESSAGES * (A.ledgerRetentionDays / A.daysPerMonth) : MESSAGES * month;
  return (items * A.ledgerItemKB) / 1e6;
}

/** One trace per drainer invocation (its runs are segments of it), one per tick. */
function xrayTraces(): number {
  const perSecond = INVOCATIONS / SECONDS;
  const sampled = Math.min(perSecond, A.xrayReservoirPerSecond) + Math.max(0, perSecond - A.xrayReservoirPerSecond) * A.xraySampledFraction;
  return sampled * SECONDS + TICKS;
}

/** Every line, all included (the secrets and the opt-in metrics are in `optionalLines`). */
export const COST_LINES: readonly CostLine[] = [
  {
    item: 'Lambda: drainer compute (arm64)',
    basis: `${(RUNS / M).toFixed(2)} M runs in batches of ${A.averageBatchFill}: ${(INVOCATIONS / M).toFixed(2)} M invocations × ${A.drainerInvocationSeconds} s × ${A.drainerMemoryGB} GB`,
    cost: () => INVOCATIONS * A.drainerInvocationSeconds * A.drainerMemoryGB * P.lambdaGBSecondArm,
  },
  {
    item: 'Lambda: requests, /tmp over 512 MB, scheduler',
    basis: `${((INVOCATIONS + TICKS) / M).toFixed(2)} M requests; ${A.drainerEphemeralGB - 0.5} GB /tmp`,
    cost: () =>
      ((INVOCATIONS + TICKS) / M) * P.lambdaPerMillionRequests +
      INVOCATIONS * A.drainerInvocationSeconds * (A.drainerEphemeralGB - 0.5) * P.lambdaEphemeralGBSecond +
      TICKS * A.schedulerRunSeconds * A.schedulerMemoryGB * P.lambdaGBSecondArm,
  },
  {
    item: 'SQS FIFO',
    basis: `${A.sqsRequestsPerRun} per run + ${A.sqsRequestsPerInvocation} per invocation + idle polling`,
    cost: () => ((RUNS * A.sqsRequestsPerRun + INVOCATIONS * A.sqsRequestsPerInvocation + A.sqsIdlePollsPerMonth) / M) * P.sqsFifoPerMillion,
  },
  {
    item: 'DynamoDB writes',
    basis: `${A.writeUnitsPerRun} per run + ${A.writeUnitsPerMessage} per message; keep: done-set flushes`,
    cost: (policy, month) =>
      ((RUNS * A.writeUnitsPerRun + MESSAGES * A.writeUnitsPerMessage + doneSetWriteUnits(policy, month)) / M) * P.dynamoPerMillionWriteUnits,
  },
  {
    item: 'DynamoDB reads',
    basis: `${A.readUnitsPerRun} per run + scheduler; keep: ${A.doneSetShards} done-set items + unanswered UIDLs per run`,
    cost: (policy, month) => (ledgerReadUnits(policy, month) / M) * P.dynamoPerMillionReadUnits,
  },
  {
    item: 'DynamoDB storage + PITR',
    basis: `${A.ledgerItemKB} KB per message item; delete: expire after ${A.ledgerRetentionDays} days`,
    cost: (policy, month) => ledgerGB(policy, month) * (P.dynamoStorageGBMonth + P.dynamoPitrGBMonth),
  },
  {
    item: 'S3 PUT',
    basis: `${(MESSAGES / M).toFixed(2)} M messages`,
    cost: () => (MESSAGES / 1000) * P.s3PutPer1000,
  },
  {
    item: 'S3 storage (Standard)',
    basis: `${STORED_GB.toFixed(1)} GB more each month (end of month)`,
    cost: (_policy, month) => STORED_GB * month * P.s3StandardGBMonth,
  },
  {
    item: 'EventBridge events',
    basis: `Email Stored + Mailbox Drained: ${((MESSAGES + RUNS) / M).toFixed(2)} M`,
    cost: () => ((MESSAGES + RUNS) / M) * P.eventBridgePerMillionEvents,
  },
  {
    item: 'Event archive (Email Stored/Skipped only)',
    basis: `${A.archivedEventKB} KB per event, kept a year`,
    cost: (_policy, month) => {
      const gb = (MESSAGES * A.archivedEventKB) / 1e6;
      return gb * P.archiveIngestGB + gb * Math.min(month, 12) * P.archiveStorageGBMonth;
    },
  },
  {
    item: 'CloudWatch Logs',
    basis: `${A.logKBPerRun} KB per run, kept ${A.logRetentionMonths} months`,
    cost: (_policy, month) => {
      const gb = (RUNS * A.logKBPerRun) / 1e6;
      return gb * P.logsIngestGB + gb * Math.min(month, A.logRetentionMonths) * P.logsStorageGBMonth;
    },
  },
  {
    item: 'X-Ray traces',
    basis: `default sampling: ${(xrayTraces() / M).toFixed(2)} M traces`,
    cost: () => (xrayTraces() / M) * P.xrayPerMillionTraces,
  },
  {
    item: 'Contributor Insights',
    basis: `${A.insightRules} rules; 3 match every run`,
    cost: () => A.insightRules * P.insightRuleMonth + ((3 * RUNS) / M) * P.insightPerMillionEvents,
  },
  {
    item: 'Alarms, dashboard, aggregate metrics',
    basis: `${A.alarmMetrics} alarm metrics, ${A.dashboards} dashboard, ${A.aggregateMetrics} metrics`,
    cost: () => A.alarmMetrics * P.alarmMetricMonth + A.dashboards * P.dashboardMonth + A.aggregateMetrics * P.customMetricMonth,
  },
];

/** What the total leaves out: the secrets (one per mailbox, or one per tenant), the opt-ins. */
export const OPTIONAL_LINES: readonly CostLine[] = [
  {
    item: 'Secrets Manager: one secret per mailbox',
    basis: `${A.mailboxes} secrets + ${(RUNS / M).toFixed(2)} M GetSecretValue`,
    cost: () => A.mailboxes * P.secretMonth + (RUNS / 10_000) * P.secretsPer10000Calls,
  },
  {
    item: 'Secrets Manager: one secret per tenant (10 tenants)',
    basis: `10 secrets + ${(RUNS / M).toFixed(2)} M GetSecretValue`,
    cost: () => 10 * P.secretMonth + (RUNS / 10_000) * P.secretsPer10000Calls,
  },
  {
    item: 'Opt-in per-mailbox metrics (perMailboxMetrics)',
    basis: `${A.perMailboxMetricNames} × ${A.mailboxes} custom metrics`,
    cost: () => A.perMailboxMetricNames * A.mailboxes * P.customMetricMonth,
  },
  {
    item: 'KMS: `customerManagedKey: true` (table, queues, logs, archive, bucket)',
    basis: `1 key + ${A.kmsCachingCallers} callers × ${A.kmsServicesPerCaller} services × a request per 5 min`,
    cost: () => P.kmsKeyMonth + ((A.kmsCachingCallers * A.kmsServicesPerCaller * 12 * 24 * A.daysPerMonth) / 10_000) * P.kmsPer10000Requests,
  },
  {
    item: 'KMS: `kms: true` (bucket key, S3 Bucket Key)',
    basis: '1 key; Bucket Key keeps requests negligible',
    cost: () => P.kmsKeyMonth,
  },
];

export const SCENARIOS: ReadonlyArray<readonly [DeletePolicy, number]> = [
  ['delete', 1],
  ['delete', 12],
  ['keep', 1],
  ['keep', 12],
];

export function total(policy: DeletePolicy, month: number): number {
  return COST_LINES.reduce((sum, line) => sum + line.cost(policy, month), 0);
}

const usd = (x: number): string => (x >= 100 ? `$${Math.round(x).toLocaleString('en-US')}` : `$${x.toFixed(2)}`);

/** The markdown table of docs/deploy.md §9. */
export function renderCostTable(): string {
  const head = `| item | basis | ${SCENARIOS.map(([p, m]) => `${p}, month ${m}`).join(' | ')} |`;
  const rule = `|---|---|${SCENARIOS.map(() => '---:').join('|')}|`;
  const row = (l: CostLine) => `| ${l.item} | ${l.basis} | ${SCENARIOS.map(([p, m]) => usd(l.cost(p, m))).join(' | ')} |`;
  const totalRow = `| **Total, all included but secrets** | | ${SCENARIOS.map(([p, m]) => `**${usd(total(p, m))}**`).join(' | ')} |`;
  return [head, rule, ...COST_LINES.map(row), totalRow, ...OPTIONAL_LINES.map(row)].join('\n');
}

/** The README's figure: delete policy, month 1, all included but secrets. */
export function headlineTotal(): string {
  return usd(total('delete', 1));
}
