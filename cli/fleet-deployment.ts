/**
 * Which deployment `popdrain fleet` works on: the ledger table and the queues, from explicit
 * names (`--table`, `--queue-url`, `--dlq-url`) or from the stack's outputs saved to a file
 * (`--stack-outputs FILE`: what `cdk deploy --outputs-file FILE` writes, or the `Outputs` of
 * `aws cloudformation describe-stacks`). Explicit names win. A pure decision over the parsed
 * file, so it is unit-tested without AWS.
 */
import { UsageError } from './exit-codes.js';
import { withoutUndefined } from '../lib/drain/without-undefined.js';

export interface FleetDeployment {
  /** The ledger table (which holds the registry). */
  readonly table: string;
  /** The drain queue (drain-now, the redrive's destination). */
  readonly queueUrl?: string;
  /** The dead-letter queue (redrive-dlq). */
  readonly deadLetterQueueUrl?: string;
}

export interface DeploymentFlags {
  table?: string;
  'queue-url'?: string;
  'dlq-url'?: string;
}

/** The outputs of one stack as a name -> value map, from either file shape. */
export function stackOutputs(parsed: unknown, stackName?: string): Record<string, string> {
  const flat = (entries: unknown): Record<string, string> => {
    const out: Record<string, string> = {};
    if (Array.isArray(entries)) {
      for (const e of entries as Array<{ OutputKey?: unknown; OutputValue?: unknown }>) {
        if (typeof e?.OutputKey === 'string' && typeof e.OutputValue === 'string') out[e.OutputKey] = e.OutputValue;
      }
    } else if (entries !== null && typeof entries === 'object') {
      for (const [k, v] of Object.entries(entries)) if (typeof v === 'string') out[k] = v;
    }
    return out;
  };
  if (Array.isArray(parsed)) return flat(parsed);
  if (parsed === null || typeof parsed !== 'object') throw new UsageError('--stack-outputs: expected a JSON object or list of outputs');
  const obj = parsed as Record<string, unknown>;
  // describe-stacks: { Stacks: [{ StackName, Outputs: [...] }] }
  if (Array.isArray(obj.Stacks)) {
    const stacks = obj.Stacks as Array<{ StackName?: string; Outputs?: unknown }>;
    const stack = stackName === undefined ? stacks[0] : stacks.find((s) => s.StackName === stackName);
    if (stack === undefined) throw new UsageError(`--stack-outputs: no stack ${stackName ?? ''} in the file`);
    return flat(stack.Outputs);
  }
  // cdk --outputs-file: { "<stack>": { "<output>": "<value>" } }, or already flat
  const stacks = Object.entries(obj).filter(([, v]) => v !== null && typeof v === 'object' && !Array.isArray(v));
  if (stacks.length === 0) return flat(obj);
  const chosen = stackName === undefined ? stacks : stacks.filter(([name]) => name === stackName);
  if (chosen.length !== 1) {
    throw new UsageError(`--stack-outputs: ${chosen.length === 0 ? `no stack ${stackName}` : `${chosen.length} stacks (${chosen.map(([n]) => n).join(', ')}); choose one with --stack`} in the file`);
  }
  return flat(chosen[0]![1]);
}

/** The deployment from flags, then outputs (LedgerTableName, QueueUrl, DeadLetterQueueUrl). */
export function resolveDeployment(flags: DeploymentFlags, outputs: Record<string, string> = {}): FleetDeployment {
  const table = flags.table ?? outputs.LedgerTableName;
  if (table === undefined) throw new UsageError('fleet: name the deployment with --stack-outputs FILE or --table TABLE (and --queue-url, --dlq-url)');
  const queueUrl = flags['queue-url'] ?? outputs.QueueUrl;
  const deadLetterQueueUrl = flags['dlq-url'] ?? outputs.DeadLetterQueueUrl;
  return { table, ...withoutUndefined({ queueUrl, deadLetterQueueUrl }) };
}
