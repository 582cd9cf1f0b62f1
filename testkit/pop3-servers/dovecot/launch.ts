// Starting the master in the foreground and waiting until every listener greets.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { open } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { trackMaster } from './processes.js';
import {
  ALT_HOST,
  EXEC_TIMEOUT_MS,
  execFileAsync,
  HOST,
  INSTALL_HINT,
  LOG_TAIL_LINES,
  READY_POLL_INTERVAL_MS,
  readOr,
  sleep,
  tail,
} from './shared.js';

const PROBE_TIMEOUT_MS = 2_000;

/** Reads the first line (the greeting) from a socket. */
function readGreeting(sock: Socket, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${what}: no greeting within ${PROBE_TIMEOUT_MS} ms`));
    }, PROBE_TIMEOUT_MS);
    sock.setEncoding('latin1');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const eol = buf.indexOf('\r\n');
      if (eol >= 0) {
        clearTimeout(timer);
        sock.destroy();
        resolve(buf.slice(0, eol));
      }
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    });
    sock.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`${what}: closed before greeting`));
    });
  });
}

async function probeGreeting(
  host: string,
  port: number,
  tls: { ca: string } | undefined,
): Promise<void> {
  const what = `${tls ? 'pop3s' : 'pop3'} ${host}:${port}`;
  const sock = tls
    ? tlsConnect({ host, port, ca: tls.ca, servername: 'localhost' })
    : netConnect({ host, port });
  const line = await readGreeting(sock, what);
  if (!line.startsWith('+OK')) {
    throw new Error(`${what}: unexpected greeting ${JSON.stringify(line)}`);
  }
}

export interface LaunchInput {
  baseDir: string;
  keep: boolean;
  dovecotBin: string;
  doveconfBin: string;
  configPath: string;
  runDir: string;
  logPath: string;
  startOutPath: string;
  ports: { pop3: number; pop3s: number; pop3Alt: number };
  caPem: string;
  deadline: number;
  onPid: (pid: number) => void;
}

export type LaunchOutcome = { ok: true } | { ok: false; addressInUse: boolean; message: string };

export async function launch(i: LaunchInput): Promise<LaunchOutcome> {
  const fail = async (reason: string): Promise<LaunchOutcome> => {
    const [log, startOut, doveconf] = await Promise.all([
      readOr(i.logPath, '(no log file)'),
      readOr(i.startOutPath, ''),
      execFileAsync(i.doveconfBin, ['-n', '-c', i.configPath], { timeout: EXEC_TIMEOUT_MS }).then(
        (r) => (r.stderr.trim() === '' ? '(config parses; no errors)' : r.stderr.trim()),
        (e: { stderr?: string; message: string }) => e.stderr?.trim() || e.message,
      ),
    ]);
    const addressInUse = /Address already in use/i.test(log + startOut);
    const message =
      `Dovecot failed to start: ${reason}\n` +
      `config: ${i.configPath}\n` +
      `--- dovecot output ---\n${startOut.trim() || '(none)'}\n` +
      `--- log tail (${i.logPath}) ---\n${tail(log, LOG_TAIL_LINES)}\n` +
      `--- doveconf -n -c ${i.configPath} ---\n${doveconf}`;
    return { ok: false, addressInUse, message };
  };

  // Foreground master (-F) as our own child rather than a daemon: we see it exit at once, we
  // reap it (the PID 1 of some containers is slow to reap a daemonized master), and it shares
  // our process group, so Ctrl-C stops it too. Output goes to a file, not a pipe.
  const out = await open(i.startOutPath, 'w');
  const child = spawn(i.dovecotBin, ['-F', '-c', i.configPath], {
    stdio: ['ignore', out.fd, out.fd],
  });
  const spawned = once(child, 'spawn').then(
    () => undefined,
    () => undefined, // the 'error' event is handled below
  );
  const exited = new Promise<string>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'ENOENT' ? 'ENOENT' : `spawn failed: ${err.message}`),
    );
    child.once('exit', (code, signal) =>
      resolve(`the master exited ${signal === null ? `with code ${code}` : `on ${signal}`}`),
    );
  });
  let exitReason: string | undefined;
  void exited.then((r) => {
    exitReason = r;
  });
  // Don't let a forgotten stop() keep the test process alive; the exit hook still kills it.
  child.unref();
  await Promise.race([spawned, exited]);
  await out.close(); // the child has its own copy of the descriptor
  if (exitReason === 'ENOENT') {
    throw new Error(`Dovecot is not installed (${i.dovecotBin} not found); ${INSTALL_HINT}`);
  }
  if (exitReason !== undefined || child.pid === undefined) return fail(exitReason ?? 'no PID');
  const pid = child.pid;
  i.onPid(pid);
  trackMaster(child, i.baseDir, i.keep);

  const probes: [string, number, { ca: string } | undefined][] = [
    [HOST, i.ports.pop3, undefined],
    [HOST, i.ports.pop3s, { ca: i.caPem }],
    [ALT_HOST, i.ports.pop3Alt, undefined],
  ];
  for (const [host, port, tls] of probes) {
    for (;;) {
      if (exitReason !== undefined) return fail(exitReason);
      try {
        await probeGreeting(host, port, tls);
        break;
      } catch (err) {
        if (Date.now() > i.deadline) {
          return fail(`${host}:${port} did not greet in time: ${(err as Error).message}`);
        }
        await sleep(READY_POLL_INTERVAL_MS);
      }
    }
  }
  return { ok: true };
}
