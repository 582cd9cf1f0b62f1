/** The data folder of `--out`: resolved, and never the empty string (which would be the current directory). */
import { resolve } from 'node:path';
import { UsageError } from './exit-codes.js';

export const DEFAULT_OUT_DIR = 'popdrain-data';

export function outDir(value: string | undefined): string {
  if (value === undefined) return resolve(DEFAULT_OUT_DIR);
  if (value.trim() === '') throw new UsageError('--out wants a folder, not an empty string (it would write into the current directory)');
  return resolve(value);
}
