/**
 * How many messages each message group (mailbox) has in a queue, reconstructed from the wire
 * requests the SQS stand-in recorded (testkit/aws/sqs-standin.ts): a successful SendMessage or
 * SendMessageBatch entry adds its MessageId to its group (a deduplicated send answers the same
 * id, so it adds nothing), a successful DeleteMessage removes the id its receipt handle names
 * (local-aws-sqs receipt handles carry `{MessageId}` after a random prefix). local-aws-sqs keeps
 * its records private, so this is how the simulation counts per mailbox without receiving (which
 * would change what it counts). Messages moved to the DLQ are not seen here: the caller compares
 * the total with the queue's own depth.
 */
import type { SqsRequest } from '../testkit/aws/sqs-standin.js';

export class QueueGroupCounter {
  private readonly groupOf = new Map<string, string>();
  private readonly perGroup = new Map<string, number>();

  constructor(private readonly queueUrl: string) {}

  /** Feeds recorded requests in order. */
  feed(requests: Iterable<SqsRequest>): void {
    for (const r of requests) {
      // DeleteMessage answers with an empty body: only the sends need their response.
      if (r.status !== 200 || r.body.QueueUrl !== this.queueUrl) continue;
      if (r.action === 'SendMessage') this.add(r.response?.MessageId, r.body.MessageGroupId);
      else if (r.action === 'SendMessageBatch') {
        const entries = (r.body.Entries ?? []) as Array<{ Id?: string; MessageGroupId?: string }>;
        for (const ok of (r.response?.Successful ?? []) as Array<{ Id?: string; MessageId?: string }>) {
          this.add(ok.MessageId, entries.find((e) => e.Id === ok.Id)?.MessageGroupId);
        }
      } else if (r.action === 'DeleteMessage') {
        const id = messageIdOfReceiptHandle(r.body.ReceiptHandle);
        const group = id === undefined ? undefined : this.groupOf.get(id);
        if (id === undefined || group === undefined) continue;
        this.groupOf.delete(id);
        const left = (this.perGroup.get(group) ?? 1) - 1;
        if (left > 0) this.perGroup.set(group, left);
        else this.perGroup.delete(group);
      }
    }
  }

  /** Messages per group now (groups with none are absent). */
  counts(): ReadonlyMap<string, number> {
    return this.perGroup;
  }

  /** The MessageIds a group has in the queue by this count. */
  messagesOf(group: string): string[] {
    return [...this.groupOf].filter(([, g]) => g === group).map(([id]) => id);
  }

  /** Messages in the queue by this count. */
  total(): number {
    return this.groupOf.size;
  }

  private add(messageId: unknown, group: unknown): void {
    if (typeof messageId !== 'string' || typeof group !== 'string' || this.groupOf.has(messageId)) return;
    this.groupOf.set(messageId, group);
    this.perGroup.set(group, (this.perGroup.get(group) ?? 0) + 1);
  }
}

/** The MessageId a local-aws-sqs receipt handle names, or undefined. */
export function messageIdOfReceiptHandle(handle: unknown): string | undefined {
  if (typeof handle !== 'string') return undefined;
  const text = Buffer.from(handle, 'base64').toString('utf8');
  const start = text.indexOf('{');
  if (start < 0) return undefined;
  try {
    const parsed = JSON.parse(text.slice(start)) as { MessageId?: unknown };
    return typeof parsed.MessageId === 'string' ? parsed.MessageId : undefined;
  } catch {
    return undefined;
  }
}
