// Constants and small helpers shared by the parts of the Dovecot test server.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

export const execFileAsync = promisify(execFile);

export const HOST = '127.0.0.1';
export const ALT_HOST = '127.0.0.2';

export const READY_POLL_INTERVAL_MS = 20;
export const EXEC_TIMEOUT_MS = 10_000;
export const LOG_TAIL_LINES = 40;

export const INSTALL_HINT = 'install it with `apt-get install -y dovecot-core dovecot-pop3d`';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function tail(text: string, lines: number): string {
  const all = text.split('\n');
  if (all.at(-1) === '') all.pop();
  return all.slice(-lines).join('\n');
}

export async function readOr(path: string, fallback: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return fallback;
  }
}
