/** The CAPA lines (RFC 2449) a session advertises. */
import type { SessionPhase } from './hooks.js';
import type { Pop3ServerFeatures } from './options.js';

const IMPLEMENTATION = 'popdrain-test-server';

/**
 * The configured lines when given, else the ones the features imply: STLS only on a plaintext
 * connection before login, as RFC 2595 asks.
 */
export function capabilityLines(
  features: Required<Pop3ServerFeatures>,
  configured: readonly string[] | null | undefined,
  tls: boolean,
  phase: SessionPhase,
): string[] {
  if (configured) return [...configured];
  const f = features;
  const lines: string[] = [];
  if (f.top) lines.push('TOP');
  if (f.uidl) lines.push('UIDL');
  if (f.user) lines.push('USER');
  if (f.sasl.length > 0) lines.push(`SASL ${f.sasl.join(' ')}`);
  if (f.pipelining) lines.push('PIPELINING');
  if (f.stls && !tls && phase === 'AUTHORIZATION') lines.push('STLS');
  lines.push('RESP-CODES', 'AUTH-RESP-CODE', `IMPLEMENTATION ${IMPLEMENTATION}`);
  return lines;
}
