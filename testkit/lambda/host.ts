/**
 * One "Lambda instance" in a child process: loads a handler module once (its module scope reads
 * the environment and builds SDK clients, as in a cold start), then serves invocations one at a
 * time over the IPC channel, as the Lambda runtime does. Started by lambda-instance.ts with
 * `POPDRAIN_LAMBDA_HANDLER` set to `scheduler` or `drainer`; the protocol is in
 * lambda-protocol.ts.
 */
import type { Context } from 'aws-lambda';
import { INVOCATION_END_MARKER, type HostMessage, type InvokeMessage } from './protocol.js';

type Handler = (event: unknown, context: Context) => Promise<unknown>;

function send(message: HostMessage): void {
  process.send?.(message);
}

function write(stream: NodeJS.WriteStream, text: string): Promise<void> {
  return new Promise((resolve) => stream.write(text, () => resolve()));
}

async function load(): Promise<Handler> {
  const which = process.env.POPDRAIN_LAMBDA_HANDLER;
  // Literal paths, so esbuild bundles both handlers into the compiled benchmark host.
  if (which === 'scheduler') return (await import('../../lambdas/scheduler.js')).handler as Handler;
  if (which === 'drainer') return (await import('../../lambdas/drainer.js')).handler as Handler;
  throw new Error(`POPDRAIN_LAMBDA_HANDLER must be "scheduler" or "drainer", not ${JSON.stringify(which)}`);
}

function context(message: InvokeMessage): Context {
  const deadline = Date.now() + message.remainingMs;
  const functionName = `popdrain-${process.env.POPDRAIN_LAMBDA_HANDLER ?? 'unknown'}`;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: message.awsRequestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `2026/01/01/[$LATEST]${process.pid}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

async function main(): Promise<void> {
  if (process.send === undefined) throw new Error('lambda-host runs as a child process with an IPC channel');
  const started = Date.now();
  let handler: Handler;
  try {
    handler = await load();
  } catch (error) {
    send({ type: 'init-error', error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    process.exitCode = 1;
    process.disconnect();
    return;
  }
  let busy = false;
  process.on('message', (raw: InvokeMessage) => {
    if (raw?.type !== 'invoke') return;
    if (busy) throw new Error('a Lambda instance serves one invocation at a time');
    busy = true;
    const t0 = Date.now();
    void (async () => {
      let outcome: HostMessage;
      try {
        const result = await handler(raw.event, context(raw));
        outcome = { type: 'result', id: raw.id, ok: true, result, durationMs: Date.now() - t0 };
      } catch (error) {
        const e = error instanceof Error ? error : new Error(String(error));
        outcome = { type: 'result', id: raw.id, ok: false, error: { name: e.name, message: e.message }, durationMs: Date.now() - t0 };
      }
      await write(process.stdout, `${INVOCATION_END_MARKER}${raw.id}\n`);
      await write(process.stderr, `${INVOCATION_END_MARKER}${raw.id}\n`);
      busy = false;
      send(outcome);
    })();
  });
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', coldStartMs: Date.now() - started });
}

await main();
