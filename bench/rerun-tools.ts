/**
 * The `<workload>-rerun` rows: the everyday cron case, a rerun that finds nothing new. Each tool
 * first drains the kept mailbox once into its own folder on the medium (`prime`, not measured);
 * every measured run then runs the same command again in that folder, and counts only if it
 * stored nothing new. The tools keep their usual names (`mpop`, `popdrain-cli`), so the row's
 * ratios compare the two reruns.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  cliDrainCommand,
  emlCount,
  maildirCount,
  parseCliReport,
  writeMpopRc,
  type BenchContext,
  type BenchTool,
  type PreparedRun,
} from './tools.js';

/** Runs a command to completion outside the measurement (the first drain of a rerun row). */
function runToEnd(run: Pick<PreparedRun, 'command' | 'args' | 'env'>, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(run.command, run.args, { env: run.env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString());
      else reject(new Error(`${run.command} exited ${code}: ${Buffer.concat(err).toString().slice(-2000)}`));
    });
  });
}

/**
 * mpop with `only_new on` (its default) and the uidls file its own first run wrote: it lists the
 * mailbox (UIDL), finds every UID known and retrieves nothing.
 */
const mpopRerun: BenchTool = {
  name: 'mpop',
  workloads: ['a', 'a20k'],
  withLatency: false,
  storesLocally: true,
  rerun: {
    prime: async (ctx, dir) => {
      const { rc, maildir } = await writeMpopRc(ctx, dir);
      await runToEnd({ command: 'mpop', args: ['-q', '-C', rc, 'bench'], env: process.env }, dir);
      const n = await maildirCount(maildir);
      if (n !== ctx.workload.count) throw new Error(`mpop's first run stored ${n} of ${ctx.workload.count} messages`);
    },
  },
  prepare: async (ctx, dir) => {
    const rc = join(dir, 'mpoprc');
    const maildir = join(dir, 'Maildir');
    return {
      command: 'mpop',
      args: ['-q', '-C', rc, 'bench'],
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      parse: async () => ({ messages: (await maildirCount(maildir)) - ctx.workload.count }),
    };
  },
};

/**
 * `popdrain drain` with the same `--out` and `--id` as its first run: it loads the ledger, lists
 * the mailbox, finds every UIDL recorded and fetches nothing.
 */
const cliRerun: BenchTool = {
  name: 'popdrain-cli',
  workloads: ['a', 'a20k'],
  withLatency: false,
  storesLocally: true,
  rerun: {
    prime: async (ctx, dir) => {
      const out = join(dir, 'out');
      const report = parseCliReport(await runToEnd(cliDrainCommand(ctx, out, rerunMailboxId(ctx)), dir));
      if (report.fetched !== ctx.workload.count) throw new Error(`popdrain's first run fetched ${report.fetched} of ${ctx.workload.count}`);
    },
  },
  prepare: async (ctx, dir) => {
    const out = join(dir, 'out');
    const mailboxId = rerunMailboxId(ctx);
    return {
      ...cliDrainCommand(ctx, out, mailboxId),
      parse: async (stdout) => {
        const report = parseCliReport(stdout);
        if (report.alreadyKnown !== ctx.workload.count) {
          throw new Error(`popdrain's rerun knew ${report.alreadyKnown} of ${ctx.workload.count} messages`);
        }
        const files = await emlCount(join(out, mailboxId));
        if (files !== ctx.workload.count) throw new Error(`popdrain's rerun left ${files} files, expected ${ctx.workload.count}`);
        return { messages: report.fetched };
      },
    };
  },
};

function rerunMailboxId(ctx: BenchContext): string {
  return `bench-rerun-${ctx.workload.id}`;
}

export const rerunTools: BenchTool[] = [mpopRerun, cliRerun];
