// The password command runs real programs (node itself, with a script given by -e), no shell.
import { describe, expect, it } from 'vitest';
import { MAX_PASSWORD_COMMAND_OUTPUT_BYTES, runPasswordCommand } from '../../lib/adapters/local/password-command.js';

const node = (script: string): string[] => [process.execPath, '-e', script];

describe('runPasswordCommand', () => {
  it('returns the first line of the output', async () => {
    await expect(runPasswordCommand(node('process.stdout.write("s3cret pass\\nsecond line\\n")'))).resolves.toBe('s3cret pass');
    await expect(runPasswordCommand(node('process.stdout.write("no newline")'))).resolves.toBe('no newline');
  });

  it('passes arguments as they are, without a shell', async () => {
    await expect(runPasswordCommand([...node('process.stdout.write(process.argv[1])'), '$HOME; `id` | x'])).resolves.toBe('$HOME; `id` | x');
  });

  it('a failing command is an error naming the exit code, never its output', async () => {
    const error = await runPasswordCommand(node('process.stdout.write("leaked-secret\\n"); process.exit(3)')).catch((e: Error) => e);
    expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', phase: 'credentials' });
    expect((error as Error).message).toContain('exit code 3');
    expect((error as Error).message).not.toContain('leaked-secret');
  });

  it('an empty first line is an error', async () => {
    await expect(runPasswordCommand(node('process.stdout.write("\\nsecond\\n")'))).rejects.toThrow(/printed no password/);
  });

  it('a command that does not exist is an error naming ENOENT', async () => {
    await expect(runPasswordCommand(['/nonexistent/popdrain-password-helper'])).rejects.toThrow(/could not start: ENOENT/);
  });

  it('is killed after the timeout', async () => {
    const started = Date.now();
    await expect(runPasswordCommand(node('setTimeout(() => {}, 60000)'), { timeoutMs: 300 })).rejects.toThrow(/took longer than 300 ms/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('output beyond the bound is refused and the command killed', async () => {
    const script = `const b = Buffer.alloc(${MAX_PASSWORD_COMMAND_OUTPUT_BYTES + 1}, 97); process.stdout.write(b); setTimeout(() => {}, 60000)`;
    await expect(runPasswordCommand(node(script))).rejects.toThrow(/printed more than/);
  });
});
