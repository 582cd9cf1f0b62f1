/**
 * Hex sha256 of a string (as UTF-8) or of bytes, in one call: Node's one-shot `crypto.hash`
 * where it exists (Node >= 20.12; a fraction of the cost of a Hash object, which matters for
 * the few digests taken per message), a Hash object otherwise. Both give the same digest.
 */
import * as crypto from 'node:crypto';

type OneShotHash = (algorithm: string, data: string | Buffer, outputEncoding: 'hex') => string;

const oneShot = (crypto as { hash?: OneShotHash }).hash;

export const sha256Hex: (data: string | Buffer) => string =
  typeof oneShot === 'function'
    ? (data) => oneShot('sha256', data, 'hex')
    : (data) => crypto.createHash('sha256').update(data).digest('hex');
