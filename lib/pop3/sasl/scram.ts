import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { SaslError, type SaslSession } from './mechanism.js';
import { saslprep } from './saslprep.js';

const pbkdf2Async = promisify(pbkdf2);

/** A hostile server could ask for billions of iterations; RFC 7677 recommends 4096. */
export const MAX_SCRAM_ITERATIONS = 1_000_000;
export const MIN_SCRAM_ITERATIONS = 1;

type Hash = 'sha1' | 'sha256';

function escapeName(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

function parseAttributes(message: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) attrs.set(part[0]!, part.slice(2));
  }
  return attrs;
}

function hmac(hash: Hash, key: Buffer, data: string): Buffer {
  return createHmac(hash, key).update(data, 'utf8').digest();
}

/**
 * RFC 5802 SCRAM (without channel binding: gs2 header `n,,`). The client proves it knows the
 * password without sending it, and checks that the server knows it too (the server signature
 * in server-final); a server that cannot prove it is refused even after +OK.
 */
export function scramSession(
  hash: Hash,
  user: string,
  password: string,
  nonce: string = randomBytes(18).toString('base64'),
): SaslSession {
  const mechanism = hash === 'sha1' ? 'SCRAM-SHA-1' : 'SCRAM-SHA-256';
  const keyLength = hash === 'sha1' ? 20 : 32;
  const gs2 = 'n,,';
  const clientFirstBare = `n=${escapeName(saslprep(user))},r=${nonce}`;
  let expectedServerSignature: Buffer | undefined;
  let verified = false;
  let step = 0;

  const handleServerFirst = async (serverFirst: string): Promise<string> => {
    const attrs = parseAttributes(serverFirst);
    if (attrs.has('m')) throw new SaslError(`${mechanism}: server requires an unsupported extension`);
    const serverNonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (serverNonce === undefined || !serverNonce.startsWith(nonce) || serverNonce.length <= nonce.length) {
      throw new SaslError(`${mechanism}: server nonce does not extend the client nonce`);
    }
    if (salt === undefined || salt.length === 0) throw new SaslError(`${mechanism}: server sent no salt`);
    if (!Number.isInteger(iterations) || iterations < MIN_SCRAM_ITERATIONS || iterations > MAX_SCRAM_ITERATIONS) {
      throw new SaslError(`${mechanism}: unacceptable iteration count`);
    }
    const salted = await pbkdf2Async(saslprep(password), Buffer.from(salt, 'base64'), iterations, keyLength, hash);
    const clientKey = hmac(hash, salted, 'Client Key');
    const storedKey = createHash(hash).update(clientKey).digest();
    const withoutProof = `c=${Buffer.from(gs2).toString('base64')},r=${serverNonce}`;
    const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = hmac(hash, storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
    expectedServerSignature = hmac(hash, hmac(hash, salted, 'Server Key'), authMessage);
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8').toString('base64');
  };

  const checkServerFinal = (serverFinal: string): void => {
    const attrs = parseAttributes(serverFinal);
    const error = attrs.get('e');
    if (error !== undefined) throw new SaslError(`${mechanism}: server reported ${error}`);
    const v = attrs.get('v');
    if (v === undefined || expectedServerSignature === undefined) {
      throw new SaslError(`${mechanism}: server-final message lacks a signature`);
    }
    const got = Buffer.from(v, 'base64');
    if (got.length !== expectedServerSignature.length || !timingSafeEqual(got, expectedServerSignature)) {
      throw new SaslError(`${mechanism}: server signature does not match; the server does not know the password`);
    }
    verified = true;
  };

  return {
    mechanism,
    initialResponse: () => Buffer.from(gs2 + clientFirstBare, 'utf8').toString('base64'),
    respond: async (challenge) => {
      step += 1;
      const decoded = Buffer.from(challenge, 'base64').toString('utf8');
      if (step === 1) return handleServerFirst(decoded);
      if (step === 2) {
        checkServerFinal(decoded);
        return '';
      }
      throw new SaslError(`${mechanism}: unexpected extra challenge`);
    },
    verifyCompletion: (okText) => {
      if (verified) return;
      // Some servers put server-final into the +OK text instead of a last challenge.
      const candidate = Buffer.from(okText.trim().split(/\s+/)[0] ?? '', 'base64').toString('utf8');
      if (/^[ve]=/.test(candidate)) {
        checkServerFinal(candidate);
        return;
      }
      throw new SaslError(`${mechanism}: server accepted the login without proving it knows the password`);
    },
  };
}
