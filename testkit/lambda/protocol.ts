/**
 * The messages between a Lambda instance in a child process (host.ts) and its parent
 * (lambda-instance.ts).
 *
 * The child sends `{type:'ready'}` once the handler module loaded (or `{type:'init-error'}`);
 * the parent sends `{type:'invoke', id, event, remainingMs, awsRequestId}`; when the handler
 * settled the child writes `INVOCATION_END_MARKER<id>` on its own line to stdout and to stderr
 * (so the parent knows which output lines belong to the invocation), then sends
 * `{type:'result', id, ...}`.
 */
export const INVOCATION_END_MARKER = '@@popdrain-lambda-host:end:';

export type LambdaHandlerName = 'scheduler' | 'drainer';

export interface InvokeMessage {
  type: 'invoke';
  id: number;
  event: unknown;
  remainingMs: number;
  awsRequestId: string;
}

export type HostMessage =
  | { type: 'ready'; coldStartMs: number }
  | { type: 'init-error'; error: string }
  | { type: 'result'; id: number; ok: true; result: unknown; durationMs: number }
  | { type: 'result'; id: number; ok: false; error: { name: string; message: string }; durationMs: number };
