// Dovecot's processes: the master's family from /proc, stopping it, and an exit hook that stops
// whatever a test process leaves running.
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { READY_POLL_INTERVAL_MS, sleep } from './shared.js';

const STOP_TIMEOUT_MS = 10_000;

interface ProcInfo {
  pid: number;
  ppid: number;
  /** Start time in clock ticks since boot: tells a process from a later one with the same PID. */
  startTicks: string;
}

/** Process info from /proc, or undefined when the process is gone or a zombie. */
function procInfo(pid: number): ProcInfo | undefined {
  let st: string;
  try {
    st = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // After "pid (comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
  // utime stime cutime cstime priority nice num_threads itrealvalue starttime ...
  const fields = st.slice(st.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // our PID 1 may reap slowly
  return { pid, ppid: Number(fields[1]), startTicks: fields[19] ?? '' };
}

/** Live child processes of `ppid` (Dovecot's services are all direct children of its master). */
function childrenOf(ppid: number): ProcInfo[] {
  const found: ProcInfo[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const info = procInfo(Number(e));
    if (info?.ppid === ppid) found.push(info);
  }
  return found;
}

// Masters still running, so a test process that exits without stop() leaves no Dovecot behind.
const runningMasters = new Map<ChildProcess, { baseDir: string; keep: boolean }>();
let exitHookInstalled = false;
export function trackMaster(child: ChildProcess, baseDir: string, keep: boolean): void {
  runningMasters.set(child, { baseDir, keep });
  child.once('exit', () => runningMasters.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [c, { baseDir: dir, keep: k }] of runningMasters) {
      c.kill('SIGTERM');
      if (!k) rmSync(dir, { recursive: true, force: true });
    }
  });
}

function signal(pids: readonly number[], sig: NodeJS.Signals): void {
  for (const p of pids) {
    try {
      process.kill(p, sig);
    } catch {
      // raced with exit
    }
  }
}

/** SIGTERM to the master; waits for it and its children, SIGKILLs whatever lingers. */
export async function stopMaster(pid: number): Promise<void> {
  // Every process is remembered with its start time, so a recycled PID is never signalled.
  const family = new Map<number, string>();
  const remember = (p: ProcInfo | undefined): void => {
    if (p) family.set(p.pid, p.startTicks);
  };
  const masterAlive = (): boolean =>
    family.has(pid) && procInfo(pid)?.startTicks === family.get(pid);
  remember(procInfo(pid));
  // The master stops its services, but we wait for each of them: once the master is gone, a
  // straggler is reparented and no longer findable as its child.
  const alive = (): number[] => {
    if (masterAlive()) childrenOf(pid).forEach(remember);
    return [...family].filter(([p, start]) => procInfo(p)?.startTicks === start).map(([p]) => p);
  };
  alive();
  signal([pid], 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  let orphansTold = false;
  for (let left = alive(); left.length > 0 && Date.now() < deadline; left = alive()) {
    if (!orphansTold && !masterAlive()) {
      // A pop3 process with a connected client outlives the master (seen with 2.3.19); on
      // SIGTERM it ends the session ("Server shutting down").
      signal(left, 'SIGTERM');
      orphansTold = true;
    }
    await sleep(READY_POLL_INTERVAL_MS);
  }
  signal(alive(), 'SIGKILL');
}
