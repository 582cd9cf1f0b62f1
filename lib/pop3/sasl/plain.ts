import type { SaslSession } from './mechanism.js';

/** RFC 4616: `authzid NUL authcid NUL password`, sent as the initial response. */
export function plainSession(user: string, password: string, authzid = ''): SaslSession {
  const payload = Buffer.from(`${authzid}\0${user}\0${password}`, 'utf8').toString('base64');
  return {
    mechanism: 'PLAIN',
    initialResponse: () => payload,
    // A server that ignores the initial response asks with an empty challenge.
    respond: () => payload,
  };
}
