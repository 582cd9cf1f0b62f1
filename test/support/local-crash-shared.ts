// What the crash tests and their child process agree on.
import { createHash } from 'node:crypto';

export const CRASH_MAILBOX = 'crash-box';

export function crashUidl(tag: string, n: number): string {
  return `${tag}-${n}`;
}

/** Filler the messages are cut from: deterministic bytes, generated once. */
const FILLER_BYTES = 256 * 1024;
let filler: Buffer | undefined;

function fillerBytes(): Buffer {
  if (filler === undefined) {
    const blocks: Buffer[] = [];
    let block = createHash('sha256').update('popdrain crash filler').digest();
    for (let n = 0; n < FILLER_BYTES; n += block.length) {
      blocks.push(block);
      block = createHash('sha256').update(block).digest();
    }
    filler = Buffer.concat(blocks);
  }
  return filler;
}

/**
 * The bytes of a crash-test message: a header naming its UIDL, then filler from a position and
 * of a length (1-128 KB, so that one message spans several writes) that depend on the UIDL.
 */
export function crashMessage(uidl: string): Buffer {
  const seed = createHash('sha256').update(uidl).digest();
  const size = 1024 + (seed.readUInt32BE(0) % (127 * 1024));
  const start = seed.readUInt32BE(4) % (FILLER_BYTES - size);
  const header = Buffer.from(`X-Uidl: ${uidl}\r\n\r\n`, 'latin1');
  return Buffer.concat([header, fillerBytes().subarray(start, start + size)]);
}

/** The UIDL a crash-test message names, or undefined. */
export function crashMessageUidl(data: Buffer): string | undefined {
  return /^X-Uidl: (\S+)\r\n/.exec(data.subarray(0, 200).toString('latin1'))?.[1];
}
