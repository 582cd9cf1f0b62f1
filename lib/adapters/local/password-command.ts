/**
 * A password from a command (fetchmail's and mpop's `passwordeval`): the command runs without a
 * shell (its argv as given), its stdin closed and its stderr passed through (so a keyring or
 * gpg can ask on the terminal), within PASSWORD_COMMAND_TIMEOUT_MS and reading at most
 * MAX_PASSWORD_COMMAND_OUTPUT_BYTES. The password is the first line of its output. A failure
 * names the command's program and its exit code or signal, never anything it printed.
 */
import { DrainError } from '../../drain/errors.js';

export const PASSWORD_COMMAND_TIMEOUT_MS = 30_000;
export const MAX_PASSWORD_COMMAND_OUTPUT_BYTES = 64 * 1024;

export interface PasswordCommandOptions {
  /** @default PASSWORD_COMMAND_TIMEOUT_MS */
  timeoutMs?: number;
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
}

function failed(message: string, cause?: unknown): DrainError {
  return new DrainError('CREDENTIALS_FAILED', message, { phase: 'credentials', retryable: false, cause });
}

export async function runPasswordCommand(argv: readonly string[], options: PasswordCommandOptions = {}): Promise<string> {
  const [program, ...args] = argv;
  if (program === undefined || program === '') throw failed('the password command is empty');
  const timeoutMs = options.timeoutMs ?? PASSWORD_COMMAND_TIMEOUT_MS;
  const what = `the password command (${program})`;
  // Loaded here, not with the module: a run whose password comes from elsewhere never needs it.
  const { spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { shell: false, stdio: ['ignore', 'pipe', 'inherit'], env: options.env ?? process.env });
    const chunks: Buffer[] = [];
    let bytes = 0;
    let problem: string | undefined;
    const stop = (reason: string): void => {
      problem ??= reason;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => stop(`took longer than ${timeoutMs} ms`), timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      bytes += d.length;
      if (bytes > MAX_PASSWORD_COMMAND_OUTPUT_BYTES) stop(`printed more than ${MAX_PASSWORD_COMMAND_OUTPUT_BYTES} bytes`);
      else chunks.push(d);
    });
    child.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(failed(`${what} could not start: ${error.code ?? 'error'}`, error));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (problem !== undefined) return reject(failed(`${what} ${problem}`));
      if (code !== 0) return reject(failed(`${what} failed: ${code === null ? `killed by ${signal}` : `exit code ${code}`}`));
      const text = Buffer.concat(chunks).toString('utf8');
      const newline = text.search(/\r?\n|\r/);
      const line = newline < 0 ? text : text.slice(0, newline);
      if (line === '') return reject(failed(`${what} printed no password (its first line is empty)`));
      resolve(line);
    });
  });
}
