/**
 * Everything popdrain's Lambdas talk to, on loopback, for running the real handlers unchanged:
 * Dovecot (the mailboxes), s3rver behind a request-counting proxy (S3), dynalite (the ledger
 * table), local-aws-sqs (the FIFO queues), and the AWS JSON endpoint (EventBridge and Secrets
 * Manager, with the mailbox passwords as secrets). `env()` is the environment the PopDrain
 * construct gives a function, pointed at these through the AWS_ENDPOINT_URL_* variables the
 * SDK honours, with fake credentials and no instance-metadata lookups.
 *
 * The S3 proxy exists because s3rver ignores `If-None-Match: *`: a second PutObject of a key
 * would silently replace the first, so "stored once" is shown by counting the PUTs per key.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { DynamoDbLedger } from '../../lib/adapters/aws/dynamodb-ledger.js';
import { startAwsJsonEndpoint, type AwsJsonEndpoint, type WireEntry } from '../aws/json-endpoint.js';
import { startDynalite, startS3rver, type DynamoDbStandin, type S3Standin } from '../aws/standins.js';
import { startDovecot, type Dovecot, type DovecotOptions } from '../pop3-servers/dovecot.js';
import { startSqs, type SqsStandin } from '../aws/sqs-standin.js';

export const STAGE_REGION = 'us-east-1';
/** s3rver only accepts its own well-known test key; dynalite, local-aws-sqs and the JSON endpoint accept any. */
const FAKE_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
const HOST = '127.0.0.1';

export interface StageMailbox {
  id: string;
  user: string;
  /** The password Dovecot accepts. */
  password: string;
  /** The secret's name in the Secrets Manager stand-in. */
  secretId: string;
  /** What the secret holds (differs from `password` for a mailbox set up to fail login). */
  secretPassword: string;
  everyMinutes: number;
  /** The messages as delivered (Dovecot serves them with CRLF line ends). */
  messages: Buffer[];
}

export interface AddMailboxOptions {
  /** @default 5 */
  everyMinutes?: number;
  /** Store this password in the secret instead of the right one. */
  wrongSecretPassword?: boolean;
}

export interface S3PutCounter {
  readonly endpoint: string;
  /** PutObject requests per path (`/<bucket>/<key>`), whatever their outcome (multipart parts not counted). */
  readonly puts: Map<string, number>;
  close(): Promise<void>;
}

export interface LambdaStage {
  readonly dovecot: Dovecot;
  readonly s3: S3Standin;
  readonly s3Puts: S3PutCounter;
  readonly dynamo: DynamoDbStandin;
  readonly sqs: SqsStandin;
  readonly aws: AwsJsonEndpoint;
  readonly bucket: string;
  readonly table: string;
  readonly eventBus: string;
  readonly prefix: string;
  /** A scratch directory (mailbox files), removed by stop(). */
  readonly dir: string;
  /** The ledger table through the real adapter (leases, state) for tests to arrange and inspect. */
  readonly ledger: DynamoDbLedger;
  readonly mailboxes: StageMailbox[];
  /** A Dovecot user with messages, and a Secrets Manager secret for its login. */
  addMailbox(user: string, messages: Buffer[], options?: AddMailboxOptions): Promise<StageMailbox>;
  /** Writes a mailbox file (config/mailboxes.json format) listing these mailboxes; returns its path. */
  writeMailboxFile(name: string, mailboxes: readonly StageMailbox[]): Promise<string>;
  /** The environment of a function, as the construct sets it, plus `extra`. */
  env(extra: Record<string, string>): NodeJS.ProcessEnv;
  /** The stored objects of a mailbox, by key. */
  storedObjects(mailboxId: string): Promise<Map<string, Buffer>>;
  /** The `Email Stored` entries PutEvents received for a mailbox. */
  storedEvents(mailboxId: string): WireEntry[];
  /** Every password and secret value handed out, for "never logged" checks. */
  secrets(): string[];
  stop(): Promise<void>;
}

export const sha256Hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A pass-through HTTP proxy in front of s3rver that counts PUT requests per path. */
async function startS3PutCounter(target: string): Promise<S3PutCounter> {
  const { hostname, port } = new URL(target);
  const puts = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    // PutObject requests; the parts of a multipart upload (?partNumber=) are not counted.
    if (req.method === 'PUT' && !url.searchParams.has('partNumber')) puts.set(url.pathname, (puts.get(url.pathname) ?? 0) + 1);
    const upstream = request({ host: hostname, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  const { port: own } = server.address() as AddressInfo;
  return {
    endpoint: `http://${HOST}:${own}`,
    puts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function listAll(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return keys;
}

export async function startLambdaStage(options: { dovecot?: DovecotOptions } = {}): Promise<LambdaStage> {
  const dir = await mkdtemp(join(tmpdir(), 'popdrain-lambda-stage-'));
  const started: Array<{ stop(): Promise<void> } | { close(): Promise<void> }> = [];
  const stopAll = async (): Promise<void> => {
    for (const s of started.reverse()) await ('stop' in s ? s.stop() : s.close()).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const [dovecot, s3, dynamo, sqs, aws] = await Promise.all([
      startDovecot(options.dovecot).then((d) => (started.push(d), d)),
      startS3rver().then((s) => (started.push(s), s)),
      startDynalite().then((d) => (started.push(d), d)),
      startSqs().then((s) => (started.push(s), s)),
      startAwsJsonEndpoint().then((a) => (started.push(a), a)),
    ]);
    const s3Puts = await startS3PutCounter(s3.endpoint);
    started.push(s3Puts);
    const bucket = `popdrain-stage-${randomBytes(4).toString('hex')}`;
    const table = 'popdrain-ledger';
    await Promise.all([s3.createBucket(bucket), dynamo.createLedgerTable(table)]);
    const ledger = new DynamoDbLedger({ client: dynamo.client(), tableName: table });
    const s3Client = s3.client();
    const prefix = 'messages/';
    const eventBus = 'popdrain-stage-bus';
    const mailboxes: StageMailbox[] = [];

    const stage: LambdaStage = {
      dovecot,
      s3,
      s3Puts,
      dynamo,
      sqs,
      aws,
      bucket,
      table,
      eventBus,
      prefix,
      dir,
      ledger,
      mailboxes,
      async addMailbox(user, messages, opts = {}) {
        const password = `pw-${user}-${randomBytes(8).toString('hex')}`;
        const secretPassword = opts.wrongSecretPassword === true ? `wrong-${user}-${randomBytes(8).toString('hex')}` : password;
        const secretId = `popdrain/${user}`;
        await dovecot.addUser(user, password);
        if (messages.length > 0) await dovecot.deliverMany(user, messages);
        aws.putSecret(secretId, JSON.stringify({ password: secretPassword }));
        const mailbox: StageMailbox = { id: `mbx-${user}`, user, password, secretId, secretPassword, everyMinutes: opts.everyMinutes ?? 5, messages };
        mailboxes.push(mailbox);
        return mailbox;
      },
      async writeMailboxFile(name, list) {
        const path = join(dir, name);
        const file = {
          version: 1,
          defaults: {
            port: dovecot.ports.pop3s,
            tls: 'implicit',
            tlsOptions: { caPem: dovecot.pki.caCertPem, servername: 'localhost' },
            deletePolicy: 'keep',
          },
          mailboxes: list.map((m) => ({
            id: m.id,
            host: dovecot.host,
            user: m.user,
            auth: { secret: m.secretId },
            schedule: { everyMinutes: m.everyMinutes },
          })),
        };
        await writeFile(path, `${JSON.stringify(file, null, 2)}\n`);
        return path;
      },
      env(extra) {
        return {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          ...FAKE_CREDENTIALS,
          AWS_REGION: STAGE_REGION,
          AWS_EC2_METADATA_DISABLED: 'true',
          AWS_ENDPOINT_URL_S3: s3Puts.endpoint,
          AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
          AWS_ENDPOINT_URL_SQS: sqs.endpoint,
          AWS_ENDPOINT_URL_EVENTBRIDGE: aws.url,
          AWS_ENDPOINT_URL_SECRETS_MANAGER: aws.url,
          // s3rver stores aws-chunked framing inside streamed bodies unless checksums are only
          // computed when an operation requires them (real S3 needs neither setting).
          AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
          AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
          POWERTOOLS_SERVICE_NAME: 'popdrain',
          POWERTOOLS_METRICS_NAMESPACE: 'popdrain',
          POWERTOOLS_LOG_LEVEL: 'INFO',
          POPDRAIN_LEDGER_TABLE: table,
          POPDRAIN_BUCKET: bucket,
          POPDRAIN_PREFIX: prefix,
          POPDRAIN_EVENT_BUS: eventBus,
          ...extra,
        };
      },
      async storedObjects(mailboxId) {
        const keys = await listAll(s3Client, bucket, `${prefix}${mailboxId}/`);
        const out = new Map<string, Buffer>();
        for (const key of keys) {
          const o = await s3Client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
          out.set(key, Buffer.from(await o.Body!.transformToByteArray()));
        }
        return out;
      },
      storedEvents(mailboxId) {
        return aws
          .putEventsBatches()
          .flat()
          .filter((e) => e.DetailType === 'Email Stored' && (JSON.parse(e.Detail ?? '{}') as { mailboxId?: string }).mailboxId === mailboxId);
      },
      secrets() {
        return mailboxes.flatMap((m) => (m.password === m.secretPassword ? [m.password] : [m.password, m.secretPassword]));
      },
      stop: stopAll,
    };
    return stage;
  } catch (error) {
    await stopAll();
    throw error;
  }
}
