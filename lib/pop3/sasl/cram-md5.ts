import { createHmac } from 'node:crypto';
import { SaslError, type SaslSession } from './mechanism.js';

/** RFC 2195: answer the challenge with `user HMAC-MD5(password, challenge)` in hex. */
export function cramMd5Session(user: string, password: string): SaslSession {
  let answered = false;
  return {
    mechanism: 'CRAM-MD5',
    initialResponse: () => undefined,
    respond: (challenge) => {
      // CRAM-MD5 has exactly one challenge: a second one is not answered with another digest.
      if (answered) throw new SaslError('CRAM-MD5: server sent more than one challenge');
      answered = true;
      const digest = createHmac('md5', Buffer.from(password, 'utf8'))
        .update(Buffer.from(challenge, 'base64'))
        .digest('hex');
      return Buffer.from(`${user} ${digest}`, 'utf8').toString('base64');
    },
  };
}
