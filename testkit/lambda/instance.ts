/**
 * Lambda instances for tests and benchmarks: each is a child process (host.ts) that
 * loaded one of popdrain's handlers with an environment of our choosing and serves one
 * invocation at a time, as Lambda does. Its stdout and stderr are captured line by line and
 * attributed to the invocation that printed them, so a test can read the Powertools log records
 * and the EMF metric blobs of each invocation.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { INVOCATION_END_MARKER, type HostMessage, type InvokeMessage, type LambdaHandlerName } from './protocol.js';

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 5_000;

/** How to start the host: tests run the TypeScript through tsx, the compiled bench its own JS. */
export interface HostCommand {
  command: string;
  args: string[];
  /** @default the repository root */
  cwd?: string;
}

/** The repository root: children start there (so `--import tsx` resolves). */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function tsxHostCommand(): HostCommand {
  return { command: process.execPath, args: ['--import', 'tsx', fileURLToPath(new URL('./host.ts', import.meta.url))] };
}

export interface OutputLine {
  stream: 'stdout' | 'stderr';
  text: string;
  /** The parsed line when it is a JSON object (Powertools log records, EMF blobs). */
  json?: Record<string, unknown>;
}

export interface InvocationResult {
  id: number;
  awsRequestId: string;
  ok: boolean;
  result?: unknown;
  error?: { name: string; message: string };
  durationMs: number;
  /** What the instance printed during this invocation. */
  output: OutputLine[];
}

export interface LambdaInstanceOptions {
  name: string;
  handler: LambdaHandlerName;
  /** The whole environment of the child (nothing is inherited). */
  env: NodeJS.ProcessEnv;
  host?: HostCommand;
}

function parseLine(stream: OutputLine['stream'], text: string): OutputLine {
  if (text.startsWith('{')) {
    try {
      const json: unknown = JSON.parse(text);
      if (json !== null && typeof json === 'object' && !Array.isArray(json)) return { stream, text, json: json as Record<string, unknown> };
    } catch {
      // not JSON after all
    }
  }
  return { stream, text };
}

interface Pending {
  message: InvokeMessage;
  lines: OutputLine[];
  ends: Set<OutputLine['stream']>;
  outcome?: Extract<HostMessage, { type: 'result' }>;
  resolve: (r: InvocationResult) => void;
  reject: (e: Error) => void;
}

export class LambdaInstance {
  /** Everything printed outside invocations (cold start). */
  readonly initOutput: OutputLine[] = [];
  /** Every line, in arrival order per stream. */
  readonly allOutput: OutputLine[] = [];
  coldStartMs = 0;
  private nextId = 1;
  private pending: Pending | undefined;
  private exited = false;
  private readonly exitPromise: Promise<void>;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    this.exitPromise = new Promise((resolve) =>
      child.once('exit', () => {
        this.exited = true;
        this.pending?.reject(new Error(`Lambda instance ${name} exited during invocation ${this.pending.message.id}`));
        this.pending = undefined;
        resolve();
      }),
    );
    for (const stream of ['stdout', 'stderr'] as const) {
      const rl = createInterface({ input: child[stream]!, crlfDelay: Infinity });
      rl.on('line', (text) => this.onLine(stream, text));
    }
    child.on('message', (m: HostMessage) => {
      if (m.type !== 'result' || this.pending === undefined || m.id !== this.pending.message.id) return;
      this.pending.outcome = m;
      this.settle();
    });
  }

  static async start(options: LambdaInstanceOptions): Promise<LambdaInstance> {
    const host = options.host ?? tsxHostCommand();
    const child = spawn(host.command, host.args, {
      env: { ...options.env, POPDRAIN_LAMBDA_HANDLER: options.handler },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      cwd: host.cwd ?? REPO_ROOT,
    });
    const instance = new LambdaInstance(options.name, child);
    const ready = await new Promise<HostMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Lambda instance ${options.name} not ready after ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        const tail = instance.initOutput.slice(-20).map((l) => l.text).join('\n');
        reject(new Error(`Lambda instance ${options.name} exited (${code ?? signal}) during init:\n${tail}`));
      });
      child.on('message', (m: HostMessage) => {
        if (m.type === 'ready' || m.type === 'init-error') {
          clearTimeout(timer);
          resolve(m);
        }
      });
    });
    if (ready.type === 'init-error') {
      await instance.stop();
      throw new Error(`Lambda instance ${options.name} failed to initialize: ${ready.error}`);
    }
    if (ready.type === 'ready') instance.coldStartMs = ready.coldStartMs;
    return instance;
  }

  get busy(): boolean {
    return this.pending !== undefined;
  }

  /** One invocation; `remainingMs` is what `context.getRemainingTimeInMillis()` starts from. */
  invoke(event: unknown, options: { remainingMs: number; awsRequestId?: string }): Promise<InvocationResult> {
    if (this.exited) return Promise.reject(new Error(`Lambda instance ${this.name} has exited`));
    if (this.pending !== undefined) return Promise.reject(new Error(`Lambda instance ${this.name} is busy (one invocation at a time)`));
    const message: InvokeMessage = {
      type: 'invoke',
      id: this.nextId++,
      event,
      remainingMs: options.remainingMs,
      awsRequestId: options.awsRequestId ?? randomUUID(),
    };
    return new Promise<InvocationResult>((resolve, reject) => {
      this.pending = { message, lines: [], ends: new Set(), resolve, reject };
      this.child.send(message);
    });
  }

  async stop(): Promise<void> {
    if (!this.exited) {
      if (this.child.connected) this.child.disconnect();
      const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await this.exitPromise;
      clearTimeout(timer);
    }
  }

  private onLine(stream: OutputLine['stream'], text: string): void {
    const p = this.pending;
    if (p !== undefined && text === `${INVOCATION_END_MARKER}${p.message.id}`) {
      p.ends.add(stream);
      this.settle();
      return;
    }
    const line = parseLine(stream, text);
    this.allOutput.push(line);
    if (p === undefined) this.initOutput.push(line);
    else p.lines.push(line);
  }

  private settle(): void {
    const p = this.pending;
    if (p === undefined || p.outcome === undefined || p.ends.size < 2) return;
    this.pending = undefined;
    const o = p.outcome;
    p.resolve({
      id: p.message.id,
      awsRequestId: p.message.awsRequestId,
      ok: o.ok,
      ...(o.ok ? { result: o.result } : { error: o.error }),
      durationMs: o.durationMs,
      output: p.lines,
    });
  }
}

/** Start `count` instances of one handler at once. */
export async function startInstances(count: number, options: Omit<LambdaInstanceOptions, 'name'> & { namePrefix: string }): Promise<LambdaInstance[]> {
  const started = await Promise.allSettled(
    Array.from({ length: count }, (_, i) => LambdaInstance.start({ ...options, name: `${options.namePrefix}-${i + 1}` })),
  );
  const ok = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(ok.map((i) => i.stop()));
    throw failed.reason;
  }
  return ok;
}
