/**
 * Where a run without `--out` keeps its state (messages, ledger, events): not the current
 * directory (a cron job started elsewhere would drain everything again) but
 * `$XDG_DATA_HOME/popdrain`, i.e. `~/.local/share/popdrain`. A `./popdrain-data` that holds a
 * ledger (the default before) is kept, with a notice, so an existing set-up is continued.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { LEDGER_SUBDIR } from '../lib/adapters/local/index.js';

/** The folder the tool used, relative to the current directory, before the default moved. */
export const FORMER_DEFAULT_OUT = 'popdrain-data';

export interface StateFolder {
  dir: string;
  /** Said once on stderr when the former default is used. */
  notice?: string;
}

/** `$XDG_DATA_HOME/popdrain` (an absolute XDG_DATA_HOME only, as the spec says), else `~/.local/share/popdrain`. */
export function xdgStateFolder(env: NodeJS.ProcessEnv, home: string = homedir()): string {
  const xdg = env.XDG_DATA_HOME;
  const base = xdg !== undefined && xdg !== '' && isAbsolute(xdg) ? xdg : join(env.HOME || home, '.local', 'share');
  return join(base, 'popdrain');
}

export function defaultStateFolder(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): StateFolder {
  const former = resolve(cwd, FORMER_DEFAULT_OUT);
  if (existsSync(join(former, LEDGER_SUBDIR))) {
    return {
      dir: former,
      notice: `using ${former} (the default state folder of earlier versions); the default is now ${xdgStateFolder(env)}: move it there, or pass --out`,
    };
  }
  return { dir: xdgStateFolder(env) };
}

/** `--out` as given, or the default. */
export function stateFolder(out: string | undefined, env: NodeJS.ProcessEnv = process.env): StateFolder {
  return out === undefined ? defaultStateFolder(env) : { dir: resolve(out) };
}
