/** The file store's keys: relative paths of plain segments that end in `.eml`. */
import { isAbsolute } from 'node:path';

const KEY_SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
/** A key of two segments that storeKeyProblem accepts (given it holds no `..` and is short enough). */
export const SIMPLE_KEY = /^([A-Za-z0-9_-][A-Za-z0-9._-]*)\/([A-Za-z0-9_-][A-Za-z0-9._-]*\.eml)$/;

/** Why `key` is not a valid store key, or undefined when it is. */
export function storeKeyProblem(key: string): string | undefined {
  if (key.length === 0 || key.length > 1024) return 'must be 1-1024 characters';
  if (isAbsolute(key) || key.startsWith('/') || key.includes('\\')) return 'must be a relative path with "/" separators';
  if (!key.endsWith('.eml')) return 'must end in ".eml"';
  const segments = key.split('/');
  if (segments.length < 2) return 'must name a folder and a file (<mailboxId>/<name>.eml)';
  for (const s of segments) {
    if (s === '..' || s.includes('..')) return 'must not contain ".."';
    if (!KEY_SEGMENT.test(s)) return 'segments must be letters, digits, ".", "_" or "-", not starting with "."';
  }
  return undefined;
}
