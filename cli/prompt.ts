import { EXIT, UsageError } from './exit-codes.js';

/**
 * Ask for a secret on the terminal without echoing it. Ctrl-C is an interruption (exit 130),
 * a terminal that closes before Enter leaves no password (exit 9, credentials unavailable).
 */
export async function promptHidden(
  question: string,
  io: { input: NodeJS.ReadStream; output: NodeJS.WritableStream } = { input: process.stdin, output: process.stderr },
): Promise<string> {
  const { input, output } = io;
  if (input.isTTY !== true) throw new UsageError('no terminal to ask for the password on', EXIT.CREDENTIALS);
  output.write(question);
  input.setRawMode(true);
  input.resume();
  input.setEncoding('utf8');
  return new Promise<string>((resolve, reject) => {
    let value = '';
    const finish = (error?: Error): void => {
      input.setRawMode(false);
      input.pause();
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      output.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003') return finish(new UsageError('cancelled', EXIT.INTERRUPTED));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else if (ch >= ' ') value += ch;
      }
    };
    const onEnd = (): void => finish(new UsageError('no password: the terminal closed before Enter', EXIT.CREDENTIALS));
    input.on('data', onData);
    input.once('end', onEnd);
  });
}
