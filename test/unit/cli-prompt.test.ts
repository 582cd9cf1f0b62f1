// The hidden password prompt, on a stand-in terminal: what it returns, and how Ctrl-C and a
// closed terminal end it (typed, with the exit codes the README gives).
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { EXIT, UsageError } from '../../cli/exit-codes.js';
import { promptHidden } from '../../cli/prompt.js';

function terminal(isTTY = true) {
  const input = Object.assign(new PassThrough(), { isTTY, rawModes: [] as boolean[] });
  (input as unknown as { setRawMode(on: boolean): void }).setRawMode = (on: boolean) => {
    input.rawModes.push(on);
  };
  const output = new PassThrough();
  let shown = '';
  output.on('data', (chunk: Buffer) => (shown += chunk.toString()));
  return { input, output, shown: () => shown };
}

async function failure(promise: Promise<string>): Promise<UsageError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UsageError);
  return error as UsageError;
}

describe('promptHidden', () => {
  it('returns what was typed (backspace edits), echoes nothing, and leaves raw mode', async () => {
    const t = terminal();
    const answer = promptHidden('Password: ', { input: t.input as unknown as NodeJS.ReadStream, output: t.output });
    t.input.write('hunter3\u007f2');
    t.input.write('\r');
    expect(await answer).toBe('hunter2');
    expect(t.shown()).toBe('Password: \n');
    expect(t.input.rawModes).toEqual([true, false]);
  });

  it('Ctrl-C is an interruption (exit 130), not an internal error', async () => {
    const t = terminal();
    const answer = promptHidden('Password: ', { input: t.input as unknown as NodeJS.ReadStream, output: t.output });
    t.input.write('hun\u0003');
    const error = await failure(answer);
    expect(error.exitCode).toBe(EXIT.INTERRUPTED);
    expect(error.message).not.toContain('hun');
    expect(t.input.rawModes).toEqual([true, false]);
  });

  it('a terminal that closes before Enter leaves no password (exit 9) instead of waiting forever', async () => {
    const t = terminal();
    const answer = promptHidden('Password: ', { input: t.input as unknown as NodeJS.ReadStream, output: t.output });
    t.input.end('partial');
    const error = await failure(answer);
    expect(error.exitCode).toBe(EXIT.CREDENTIALS);
    expect(error.message).not.toContain('partial');
  });

  it('without a terminal it says so (exit 9)', async () => {
    const t = terminal(false);
    const error = await failure(promptHidden('Password: ', { input: t.input as unknown as NodeJS.ReadStream, output: t.output }));
    expect(error.exitCode).toBe(EXIT.CREDENTIALS);
    expect(error.message).toMatch(/no terminal/);
  });
});
