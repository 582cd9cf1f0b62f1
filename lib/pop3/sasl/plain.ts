import { SaslError, type SaslSession } from './mechanism.js';

/**
 * RFC 4616: `authzid NUL authcid NUL password`, sent as the initial response. The credentials go
 * out once: a server that ignored the initial response may ask with one empty challenge (only
 * then, when they were not sent yet, are they answered); any other challenge cancels the
 * exchange instead of sending the password again.
 */
export function plainSession(user: string, password: string, authzid = ''): SaslSession {
  const payload = Buffer.from(`${authzid}\0${user}\0${password}`, 'utf8').toString('base64');
  let sent = false;
  return {
    mechanism: 'PLAIN',
    initialResponse: () => {
      sent = true;
      return payload;
    },
    respond: (challenge) => {
      if (sent || challenge.length > 0) {
        throw new SaslError('PLAIN: server sent a challenge after the credentials; not sending them again');
      }
      sent = true;
      return payload;
    },
  };
}
