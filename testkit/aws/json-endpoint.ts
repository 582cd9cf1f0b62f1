/**
 * A loopback endpoint speaking the AWS JSON 1.1 protocol, for the two services that have no
 * local stand-in: EventBridge (`AWSEvents.PutEvents`) and Secrets Manager
 * (`secretsmanager.GetSecretValue`, `secretsmanager.PutSecretValue`,
 * `secretsmanager.UpdateSecretVersionStage`). Real SDK clients talk to it (their serialization,
 * signing, error parsing and retries are all exercised); it records every request and lets a
 * test script faults.
 *
 * Secrets have versions with staging labels, as Secrets Manager documents them: a label is on at
 * most one version; GetSecretValue reads AWSCURRENT (or the VersionStage/VersionId asked for);
 * PutSecretValue without VersionStages moves AWSCURRENT to the new version (and AWSPREVIOUS to
 * the old), with VersionStages attaches only those; a ClientRequestToken is the new version's id
 * (the same token and value again is a no-op, a different value fails); UpdateSecretVersionStage
 * moves a label only when RemoveFromVersionId names the version that holds it, and fails
 * otherwise (the compare-and-swap popdrain's refresh-token rotation relies on).
 *
 * It enforces PutEvents' request limits as the service does (at most 10 entries, at most
 * 256 KiB of entry bytes), so a sink that batches wrongly fails here too.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const PUT_EVENTS = 'AWSEvents.PutEvents';
export const GET_SECRET_VALUE = 'secretsmanager.GetSecretValue';
export const PUT_SECRET_VALUE = 'secretsmanager.PutSecretValue';
export const UPDATE_SECRET_VERSION_STAGE = 'secretsmanager.UpdateSecretVersionStage';
const CURRENT = 'AWSCURRENT';
const PREVIOUS = 'AWSPREVIOUS';

const MAX_ENTRIES = 10;
const MAX_REQUEST_ENTRY_BYTES = 256 * 1024;
const ACCOUNT = '123456789012';
const REGION = 'us-east-1';

export interface RecordedRequest {
  /** The X-Amz-Target header, e.g. `AWSEvents.PutEvents`. */
  target: string;
  body: Record<string, unknown>;
  headers: IncomingHttpHeaders;
}

/** A PutEvents entry as the client serialized it (JSON 1.1: Time is epoch seconds). */
export interface WireEntry {
  Source?: string;
  DetailType?: string;
  Detail?: string;
  Time?: number;
  EventBusName?: string;
  Resources?: string[];
  [key: string]: unknown;
}

/** What the endpoint answers instead of the normal response. */
export type Fault =
  /** `{"__type":"ThrottlingException"}` with status 400. */
  | { kind: 'throttle' }
  /** A bare HTTP status with a JSON error body (`InternalFailure` by default). */
  | { kind: 'status'; status: number; type?: string }
  /** A modelled error, e.g. AccessDeniedException with status 400. */
  | { kind: 'error'; type: string; status?: number; message?: string }
  /** Close the connection without answering. */
  | { kind: 'drop' }
  /** Exactly this body (e.g. JSON cut short), with this status. */
  | { kind: 'raw'; status: number; body: string };

export interface EntryFault {
  ErrorCode: string;
  ErrorMessage?: string;
}

/**
 * Decides per PutEvents entry whether the bus reports it as failed. `request` counts PutEvents
 * requests (from 1), `entry` is the entry as received.
 */
export type EntryFaultRule = (entry: WireEntry, context: { request: number; position: number }) => EntryFault | undefined;

interface SecretVersion {
  versionId: string;
  secretString: string;
  createdDate: number;
  stages: Set<string>;
}

interface StoredSecret {
  name: string;
  arn: string;
  versions: SecretVersion[];
}

export interface AwsJsonEndpoint {
  /** `http://127.0.0.1:<port>`, for the client's `endpoint`. */
  readonly url: string;
  /** Every request received, in order (faulted ones included). */
  readonly requests: RecordedRequest[];
  /** Requests of one operation. */
  requestsFor(target: string): RecordedRequest[];
  /** PutEvents entries as received, one array per request. */
  putEventsBatches(): WireEntry[][];
  /** Answer the next `count` requests (of `target`, or of any operation) with `fault`. */
  failNext(count: number, fault: Fault, target?: string): void;
  /** Forget the faults not yet used up. */
  clearFaults(): void;
  /** Report PutEvents entries failed (FailedEntryCount, per-entry ErrorCode) by a rule. */
  setEntryFaults(rule: EntryFaultRule | undefined): void;
  /** Create or replace a secret (a new version with AWSCURRENT). */
  putSecret(name: string, secretString: string): void;
  /** The current SecretString of a secret. */
  secretString(name: string): string | undefined;
  /** How many versions a secret has. */
  secretVersions(name: string): number;
  /** The staging labels of each version, oldest first. */
  secretStages(name: string): Array<{ versionId: string; stages: string[] }>;
  /** Each answer waits this long after its request arrived (a region's round trip); may be changed. @default 0 */
  delayMs: number;
  /** The most requests it has held at once (received, not yet answered). */
  readonly maxInFlight: number;
  close(): Promise<void>;
}

function entryBytes(entry: WireEntry): number {
  let size = entry.Time === undefined ? 0 : 14;
  for (const field of [entry.Source, entry.DetailType, entry.Detail]) {
    if (typeof field === 'string') size += Buffer.byteLength(field, 'utf8');
  }
  for (const r of entry.Resources ?? []) size += Buffer.byteLength(r, 'utf8');
  return size;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomUUID(),
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  send(res, status, { __type: type, message });
}

export async function startAwsJsonEndpoint(options: { delayMs?: number } = {}): Promise<AwsJsonEndpoint> {
  const timing = { delayMs: options.delayMs ?? 0, inFlight: 0, maxInFlight: 0 };
  const requests: RecordedRequest[] = [];
  const faults: Array<{ remaining: number; fault: Fault; target: string | undefined }> = [];
  let entryRule: EntryFaultRule | undefined;
  let putEventsCount = 0;
  const secrets = new Map<string, StoredSecret>();

  const findSecret = (id: unknown): StoredSecret | undefined => {
    if (typeof id !== 'string') return undefined;
    for (const s of secrets.values()) if (s.name === id || s.arn === id) return s;
    return undefined;
  };

  const holder = (secret: StoredSecret, stage: string): SecretVersion | undefined => secret.versions.find((v) => v.stages.has(stage));
  /** Attach `stage` to `version`, taking it from whichever version holds it (AWSCURRENT leaves AWSPREVIOUS behind). */
  const attach = (secret: StoredSecret, version: SecretVersion, stage: string): void => {
    const from = holder(secret, stage);
    if (from === version) return;
    from?.stages.delete(stage);
    version.stages.add(stage);
    if (stage === CURRENT && from !== undefined) attach(secret, from, PREVIOUS);
  };

  const takeFault = (target: string): Fault | undefined => {
    const i = faults.findIndex((f) => f.remaining > 0 && (f.target === undefined || f.target === target));
    if (i < 0) return undefined;
    const f = faults[i]!;
    f.remaining -= 1;
    if (f.remaining === 0) faults.splice(i, 1);
    return f.fault;
  };

  const putEvents = (res: ServerResponse, body: Record<string, unknown>): void => {
    putEventsCount += 1;
    const entries = Array.isArray(body.Entries) ? (body.Entries as WireEntry[]) : [];
    if (entries.length < 1 || entries.length > MAX_ENTRIES) {
      sendError(res, 400, 'ValidationException', `1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length between 1 and ${MAX_ENTRIES}`);
      return;
    }
    const total = entries.reduce((n, e) => n + entryBytes(e), 0);
    if (total > MAX_REQUEST_ENTRY_BYTES) {
      sendError(res, 400, 'ValidationException', 'Total size of the entries in the request is over the limit.');
      return;
    }
    let failed = 0;
    const results = entries.map((entry, position) => {
      let detailOk = false;
      try {
        const parsed: unknown = JSON.parse(entry.Detail ?? '');
        detailOk = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed);
      } catch {
        detailOk = false;
      }
      const fault: EntryFault | undefined = !detailOk
        ? { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is malformed.' }
        : entryRule?.(entry, { request: putEventsCount, position });
      if (fault !== undefined) {
        failed += 1;
        return fault;
      }
      return { EventId: randomUUID() };
    });
    send(res, 200, { FailedEntryCount: failed, Entries: results });
  };

  const getSecretValue = (res: ServerResponse, body: Record<string, unknown>): void => {
    const secret = findSecret(body.SecretId);
    const stage = typeof body.VersionStage === 'string' ? body.VersionStage : CURRENT;
    const version =
      secret === undefined ? undefined : typeof body.VersionId === 'string' ? secret.versions.find((v) => v.versionId === body.VersionId) : holder(secret, stage);
    if (secret === undefined || version === undefined) {
      sendError(res, 400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
      return;
    }
    send(res, 200, {
      ARN: secret.arn,
      Name: secret.name,
      VersionId: version.versionId,
      SecretString: version.secretString,
      VersionStages: [...version.stages],
      CreatedDate: version.createdDate,
    });
  };

  const putSecretValue = (res: ServerResponse, body: Record<string, unknown>): void => {
    const secret = findSecret(body.SecretId);
    if (secret === undefined) {
      sendError(res, 400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
      return;
    }
    if (typeof body.SecretString !== 'string') {
      sendError(res, 400, 'InvalidParameterException', 'You must provide either SecretString or SecretBinary.');
      return;
    }
    // Secrets Manager uses the idempotency token as the new version's id.
    const versionId = typeof body.ClientRequestToken === 'string' ? body.ClientRequestToken : randomUUID();
    const existing = secret.versions.find((v) => v.versionId === versionId);
    if (existing !== undefined) {
      if (existing.secretString !== body.SecretString) {
        sendError(res, 400, 'ResourceExistsException', 'A version with this ClientRequestToken already exists with different data.');
        return;
      }
      send(res, 200, { ARN: secret.arn, Name: secret.name, VersionId: versionId, VersionStages: [...existing.stages] });
      return;
    }
    const version: SecretVersion = { versionId, secretString: body.SecretString, createdDate: Date.now() / 1000, stages: new Set() };
    secret.versions.push(version);
    const stages = Array.isArray(body.VersionStages) ? (body.VersionStages as unknown[]).filter((x): x is string => typeof x === 'string') : [CURRENT];
    for (const stage of stages) attach(secret, version, stage);
    send(res, 200, { ARN: secret.arn, Name: secret.name, VersionId: versionId, VersionStages: [...version.stages] });
  };

  const updateSecretVersionStage = (res: ServerResponse, body: Record<string, unknown>): void => {
    const secret = findSecret(body.SecretId);
    if (secret === undefined) {
      sendError(res, 400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
      return;
    }
    const stage = body.VersionStage;
    if (typeof stage !== 'string') {
      sendError(res, 400, 'InvalidParameterException', 'VersionStage is required.');
      return;
    }
    const to = typeof body.MoveToVersionId === 'string' ? secret.versions.find((v) => v.versionId === body.MoveToVersionId) : undefined;
    if (body.MoveToVersionId !== undefined && to === undefined) {
      sendError(res, 400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret version.");
      return;
    }
    const from = holder(secret, stage);
    if (from !== undefined && from !== to && from.versionId !== body.RemoveFromVersionId) {
      sendError(res, 400, 'InvalidParameterException', `The staging label ${stage} is attached to a version other than RemoveFromVersionId.`);
      return;
    }
    if (to === undefined) from?.stages.delete(stage);
    else attach(secret, to, stage);
    send(res, 200, { ARN: secret.arn, Name: secret.name });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const text = await readBody(req);
    const target = String(req.headers['x-amz-target'] ?? '');
    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = text === '' ? {} : JSON.parse(text);
      if (parsed !== null && typeof parsed === 'object') body = parsed as Record<string, unknown>;
    } catch {
      sendError(res, 400, 'SerializationException', 'Request body is not JSON.');
      return;
    }
    requests.push({ target, body, headers: req.headers });

    const fault = takeFault(target);
    if (fault !== undefined) {
      switch (fault.kind) {
        case 'throttle':
          sendError(res, 400, 'ThrottlingException', 'Rate exceeded');
          return;
        case 'status':
          sendError(res, fault.status, fault.type ?? 'InternalFailure', 'Internal failure (scripted).');
          return;
        case 'error':
          sendError(res, fault.status ?? 400, fault.type, fault.message ?? `${fault.type} (scripted)`);
          return;
        case 'drop':
          req.socket.destroy();
          return;
        case 'raw':
          res.writeHead(fault.status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() });
          res.end(fault.body);
          return;
      }
    }

    switch (target) {
      case PUT_EVENTS:
        putEvents(res, body);
        return;
      case GET_SECRET_VALUE:
        getSecretValue(res, body);
        return;
      case PUT_SECRET_VALUE:
        putSecretValue(res, body);
        return;
      case UPDATE_SECRET_VERSION_STAGE:
        updateSecretVersionStage(res, body);
        return;
      default:
        sendError(res, 400, 'UnknownOperationException', `Unknown operation ${target}`);
    }
  };

  const server: Server = createServer((req, res) => {
    timing.inFlight += 1;
    timing.maxInFlight = Math.max(timing.maxInFlight, timing.inFlight);
    res.once('close', () => {
      timing.inFlight -= 1;
    });
    const run = (): void => {
      handle(req, res).catch(() => {
        if (!res.headersSent) sendError(res, 500, 'InternalFailure', 'Test endpoint failed.');
        else res.destroy();
      });
    };
    if (timing.delayMs > 0) setTimeout(run, timing.delayMs);
    else run();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    requestsFor: (target) => requests.filter((r) => r.target === target),
    putEventsBatches: () =>
      requests.filter((r) => r.target === PUT_EVENTS).map((r) => (Array.isArray(r.body.Entries) ? (r.body.Entries as WireEntry[]) : [])),
    failNext: (count, fault, target) => {
      faults.push({ remaining: count, fault, target });
    },
    clearFaults: () => {
      faults.splice(0);
    },
    setEntryFaults: (rule) => {
      entryRule = rule;
    },
    putSecret: (name, secretString) => {
      const existing = secrets.get(name);
      const version: SecretVersion = { versionId: randomUUID(), secretString, createdDate: Date.now() / 1000, stages: new Set() };
      if (existing === undefined) {
        const arn = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${name}-${randomUUID().slice(0, 6)}`;
        version.stages.add(CURRENT);
        secrets.set(name, { name, arn, versions: [version] });
      } else {
        existing.versions.push(version);
        attach(existing, version, CURRENT);
      }
    },
    secretString: (name) => {
      const secret = secrets.get(name);
      return secret === undefined ? undefined : holder(secret, CURRENT)?.secretString;
    },
    secretVersions: (name) => secrets.get(name)?.versions.length ?? 0,
    secretStages: (name) => (secrets.get(name)?.versions ?? []).map((v) => ({ versionId: v.versionId, stages: [...v.stages].sort() })),
    get delayMs() {
      return timing.delayMs;
    },
    set delayMs(ms: number) {
      timing.delayMs = ms;
    },
    get maxInFlight() {
      return timing.maxInFlight;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
