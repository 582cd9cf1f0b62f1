/**
 * The loopback world of `npm run bench:fleet`: Dovecot (with pop3_lock_session, its log in a
 * file), dynalite (the ledger and registry table), the AWS JSON endpoint (EventBridge, Secrets
 * Manager with one secret per mailbox), the in-memory S3 endpoint, and the SQS stand-in in its
 * own process on the scaled clock (fleet-sqs-host.ts). Also the mailboxes: Dovecot users from
 * a passwd file per user, their initial mail, their secrets, the seed mailbox file.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startAwsJsonEndpoint, type AwsJsonEndpoint } from '../testkit/aws/json-endpoint.js';
import { startS3LatencyEndpoint, type S3LatencyEndpoint } from '../testkit/aws/s3-latency-endpoint.js';
import { startDynalite, type DynamoDbStandin } from '../testkit/aws/standins.js';
import { scaledClockEnv, type ScaledClockSpec } from '../testkit/clock/scaled-clock.js';
import { startDovecot, type Dovecot } from '../testkit/pop3-servers/dovecot.js';
import type { FleetMailboxPlan } from './fleet-plan.js';
import type { SqsHostReady, SqsHostSample } from './fleet-sqs-host.js';

export const FLEET_BUCKET = 'popdrain-fleet';
export const FLEET_TABLE = 'popdrain-fleet-ledger';
export const FLEET_BUS = 'popdrain-fleet-bus';
export const FLEET_PREFIX = 'messages/';
const REGION = 'us-east-1';

export interface FleetSqs extends SqsHostReady {
  sample(): Promise<SqsHostSample>;
  stop(): Promise<void>;
}

export interface FleetWorld {
  dovecot: Dovecot;
  dynamo: DynamoDbStandin;
  aws: AwsJsonEndpoint;
  s3: S3LatencyEndpoint;
  /** Started last (startFleetSqs), when the clock's origin is known. */
  sqs: FleetSqs;
  passwords: Map<string, string>;
  stops: Array<() => Promise<unknown>>;
  stop(): Promise<void>;
}

/** A fleet message: unique per mailbox and index, CRLF line ends (served as stored). */
export function fleetMessage(user: string, index: number, bodyBytes = 300): Buffer {
  const body = `message ${index} of ${user}\r\n.a line with a dot\r\n${'x'.repeat(bodyBytes)}\r\n`;
  return Buffer.from(
    `From: Sender <s${index}@example.com>\r\nTo: ${user}@example.com\r\nSubject: ${user} ${index}\r\nMessage-ID: <${user}-${index}@fleet.example>\r\n\r\n${body}`,
  );
}

/** The SQS stand-in process on the scaled clock; stopped with the world. */
export async function startFleetSqs(world: FleetWorld, hostPath: string, spec: ScaledClockSpec, visibilityTimeoutSeconds: number): Promise<FleetSqs> {
  const sqs = await startSqsHost(hostPath, spec, visibilityTimeoutSeconds);
  world.sqs = sqs;
  world.stops.push(() => sqs.stop());
  return sqs;
}

async function startSqsHost(hostPath: string, spec: ScaledClockSpec, visibilityTimeoutSeconds: number): Promise<FleetSqs> {
  const child: ChildProcess = fork(hostPath, [], {
    env: { PATH: process.env.PATH, ...scaledClockEnv(spec, { scaleTimers: true }), FLEET_VISIBILITY_TIMEOUT_SECONDS: String(visibilityTimeoutSeconds) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = await new Promise<SqsHostReady>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the SQS stand-in process exited (${code}) before it was ready`)));
    child.once('message', (m: SqsHostReady) => resolve(m));
  });
  let next = 1;
  const waiting = new Map<number, (s: SqsHostSample) => void>();
  child.on('message', (m: SqsHostSample) => {
    if (m.type === 'sample') {
      waiting.get(m.id)?.(m);
      waiting.delete(m.id);
    }
  });
  return {
    ...ready,
    sample: () =>
      new Promise((resolve) => {
        const id = next++;
        waiting.set(id, resolve);
        child.send({ type: 'sample', id });
      }),
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export async function startFleetWorld(): Promise<FleetWorld> {
  const stops: Array<() => Promise<unknown>> = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    // One POP3 session per mailbox at a time (a second login gets -ERR [IN-USE]); login
    // processes reused (the simulation logs in tens of thousands of times).
    const dovecot = await startDovecot({ extraConfig: 'pop3_lock_session = yes\nservice pop3-login {\n  service_count = 0\n  process_min_avail = 2\n}\n' });
    stops.push(() => dovecot.stop());
    const dynamo = await startDynalite();
    stops.push(() => dynamo.stop());
    await dynamo.createLedgerTable(FLEET_TABLE);
    const aws = await startAwsJsonEndpoint();
    stops.push(() => aws.close());
    const s3 = await startS3LatencyEndpoint({ delayMs: 0, buckets: [FLEET_BUCKET] });
    stops.push(() => s3.close());
    return { dovecot, dynamo, aws, s3, sqs: undefined as unknown as FleetSqs, passwords: new Map(), stops, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Dovecot users, their initial mail and their secrets (a wrong password for the failing ones). */
export async function createMailboxes(world: FleetWorld, plan: readonly FleetMailboxPlan[]): Promise<void> {
  for (const m of plan) {
    const password = `pw-${randomBytes(6).toString('hex')}`;
    world.passwords.set(m.user, password);
    await world.dovecot.addUser(m.user, password);
    const secret = m.role === 'failing' ? `wrong-${randomBytes(6).toString('hex')}` : password;
    world.aws.putSecret(`popdrain/${m.user}`, JSON.stringify({ password: secret }));
    if (m.initialMessages > 0) {
      await world.dovecot.deliverMany(
        m.user,
        Array.from({ length: m.initialMessages }, (_, i) => fleetMessage(m.user, i)),
      );
    }
  }
}

/** A mailbox's registry entry / mailbox-file entry (what `popdrain fleet add` takes). */
export function registryEntry(world: FleetWorld, m: FleetMailboxPlan): Record<string, unknown> {
  return {
    id: m.id,
    host: world.dovecot.host,
    port: world.dovecot.ports.pop3s,
    tls: 'implicit',
    tlsOptions: { caPem: world.dovecot.pki.caCertPem, servername: 'localhost' },
    user: m.user,
    auth: { secret: `popdrain/${m.user}` },
    deletePolicy: 'keep',
    schedule: { everyMinutes: m.everyMinutes },
    ...(m.maxMessagesPerRun === undefined ? {} : { limits: { maxMessagesPerRun: m.maxMessagesPerRun } }),
  };
}

export async function writeSeedFile(world: FleetWorld, dir: string, plan: readonly FleetMailboxPlan[]): Promise<string> {
  const path = join(dir, 'fleet-mailboxes.json');
  await writeFile(path, `${JSON.stringify({ version: 1, mailboxes: plan.map((m) => registryEntry(world, m)) })}\n`);
  return path;
}

/** The environment of a Lambda-like process, as the PopDrain construct sets it, pointed at the world. */
export function lambdaEnv(world: FleetWorld, clock: ScaledClockSpec, extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    AWS_ACCESS_KEY_ID: 'fleet-fake-key',
    AWS_SECRET_ACCESS_KEY: 'fleet-fake-secret',
    AWS_REGION: REGION,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL_S3: world.s3.url,
    AWS_ENDPOINT_URL_DYNAMODB: world.dynamo.endpoint,
    AWS_ENDPOINT_URL_SQS: world.sqs.endpoint,
    AWS_ENDPOINT_URL_EVENTBRIDGE: world.aws.url,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: world.aws.url,
    AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
    AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
    POWERTOOLS_SERVICE_NAME: 'popdrain',
    POWERTOOLS_METRICS_NAMESPACE: 'popdrain',
    POWERTOOLS_LOG_LEVEL: 'INFO',
    POWERTOOLS_METRICS_DISABLED: 'true',
    POPDRAIN_LEDGER_TABLE: FLEET_TABLE,
    POPDRAIN_BUCKET: FLEET_BUCKET,
    POPDRAIN_PREFIX: FLEET_PREFIX,
    POPDRAIN_EVENT_BUS: FLEET_BUS,
    POPDRAIN_QUEUE_URL: world.sqs.queueUrl,
    POPDRAIN_MAILBOX_SOURCE: 'registry',
    ...scaledClockEnv(clock),
    ...extra,
  };
}
