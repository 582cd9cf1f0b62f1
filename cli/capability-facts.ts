/** The lines `popdrain check` shows for CAPA's typed facts (RFC 2449 IMPLEMENTATION, LOGIN-DELAY, EXPIRE). */
import type { Capabilities } from '../lib/pop3/index.js';

/** What CAPA says beyond its names: the server's name, its login delay and how long it keeps retrieved mail. */
export function capabilityFacts(caps: Capabilities): string[] {
  const lines: string[] = [];
  if (caps.implementation !== undefined) lines.push(`implementation: ${caps.implementation}`);
  if (caps.loginDelaySeconds !== undefined) lines.push(`login delay: at least ${caps.loginDelaySeconds} s between logins`);
  if (caps.expire?.kind === 'never') lines.push('expire: never (retrieved messages stay until deleted)');
  else if (caps.expire?.days === 0) lines.push('expire: 0 days: the server deletes every message once retrieved, so keeping mail on the server cannot work');
  else if (caps.expire !== undefined) lines.push(`expire: the server may delete retrieved messages after ${caps.expire.days} days`);
  return lines;
}
