/**
 * An example consumer of popdrain's events: a Lambda behind an EventBridge rule for
 * `Email Stored` that reads the stored message from S3 and parses it with mailparser.
 * Deduplicates on `detail.id` (an event may be delivered more than once, with the same id).
 * The rule and the function are in examples/consumer-stack.ts.
 */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { EventBridgeEvent } from 'aws-lambda';
import { simpleParser } from 'mailparser';
import type { Readable } from 'node:stream';
import type { EmailStoredDetail } from '../lib/drain/events.js';

const s3 = new S3Client({});
/** Replace with a durable store (e.g. a DynamoDB conditional put on detail.id) in production. */
const seen = new Set<string>();

export async function handler(event: EventBridgeEvent<'Email Stored', EmailStoredDetail>): Promise<void> {
  const detail = event.detail;
  if (seen.has(detail.id)) return;
  if (detail.storage.type !== 's3') throw new Error(`expected an S3 object, got ${detail.storage.type}`);
  const object = await s3.send(new GetObjectCommand({ Bucket: detail.storage.bucket, Key: detail.storage.key }));
  // mailparser holds text parts in memory: fine for a consumer that wants them, and the event
  // already tells the size (skip huge ones, or stream attachments out with mailparser's
  // MailParser class instead of simpleParser).
  if (detail.size > 50 * 1024 * 1024) {
    console.log(JSON.stringify({ id: detail.id, skipped: 'too large to parse here', size: detail.size }));
    return;
  }
  const mail = await simpleParser(object.Body as Readable);
  console.log(
    JSON.stringify({
      id: detail.id,
      mailbox: detail.mailboxId,
      subject: mail.subject,
      from: mail.from?.text,
      textPreview: mail.text?.slice(0, 200),
      attachments: mail.attachments.map((a) => ({ filename: a.filename, contentType: a.contentType, size: a.size })),
    }),
  );
  seen.add(detail.id);
}
