import { cramMd5Session } from './cram-md5.js';
import { loginSession } from './login.js';
import { isTokenCredentials, SaslError, type Pop3Credentials, type SaslMechanismName, type SaslSession } from './mechanism.js';
import { oauthBearerSession, xoauth2Session } from './oauth.js';
import { plainSession } from './plain.js';
import { scramSession } from './scram.js';

export * from './mechanism.js';

/** Start a session of `mechanism` for these credentials, or fail when they don't fit it. */
export function createSaslSession(
  mechanism: SaslMechanismName,
  credentials: Pop3Credentials,
  server: { host?: string; port?: number } = {},
): SaslSession {
  if (isTokenCredentials(credentials)) {
    if (mechanism === 'XOAUTH2') return xoauth2Session(credentials.user, credentials.accessToken);
    if (mechanism === 'OAUTHBEARER') {
      return oauthBearerSession(credentials.user, credentials.accessToken, server.host, server.port);
    }
    throw new SaslError(`${mechanism} needs a password, but an OAuth2 access token was given`);
  }
  const { user, password } = credentials;
  switch (mechanism) {
    case 'PLAIN':
      return plainSession(user, password, credentials.authzid);
    case 'LOGIN':
      return loginSession(user, password);
    case 'CRAM-MD5':
      return cramMd5Session(user, password);
    case 'SCRAM-SHA-1':
      return scramSession('sha1', user, password);
    case 'SCRAM-SHA-256':
      return scramSession('sha256', user, password);
    case 'XOAUTH2':
    case 'OAUTHBEARER':
      throw new SaslError(`${mechanism} needs an OAuth2 access token, but a password was given`);
  }
}
