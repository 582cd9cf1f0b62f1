/**
 * One line for a file-system failure of the local adapters: the errno code once, Node's
 * description with the call and the path (`EROFS: read-only file system, open '/x'`), and the
 * likely fix for the codes that need a person. Pure.
 */
import { describeError } from '../../drain/errors.js';
import { errnoCode } from './durable-fs.js';

const HINTS: Readonly<Record<string, string>> = {
  EROFS: 'the file system is mounted read-only: choose a writable folder or remount it read-write',
  EACCES: 'permission denied: check the owner and mode of the folder (popdrain runs as this user)',
  EPERM: 'operation not permitted: check the owner and mode of the folder (popdrain runs as this user)',
  ENOSPC: 'the disk is full: free some space, then run again',
  EDQUOT: 'the disk quota is used up: free some space, then run again',
  ENOTDIR: 'a part of the path is a file, not a folder',
};

export function fsFailureText(cause: unknown): string {
  const code = errnoCode(cause);
  let text = describeError(cause);
  // Node's messages start with their code; an error made elsewhere may not.
  if (code !== undefined && /^E[A-Z]+$/.test(code) && !text.startsWith(`${code}:`) && !text.startsWith(`${code} `)) text = `${code}: ${text}`;
  const hint = code === undefined ? undefined : HINTS[code];
  return hint === undefined ? text : `${text} (${hint})`;
}
