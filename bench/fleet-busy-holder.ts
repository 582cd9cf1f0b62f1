/**
 * Holds a mailbox's POP3 session open from a side connection, as another mail client would:
 * with Dovecot's `pop3_lock_session = yes`, a second login to the mailbox is answered
 * `-ERR [IN-USE] ...` until this session ends. A NOOP now and then keeps Dovecot's idle
 * autologout away.
 */
import { connect, type Socket } from 'node:net';

const NOOP_EVERY_MS = 20_000;
const REPLY_TIMEOUT_MS = 10_000;

export interface BusyHolder {
  release(): Promise<void>;
}

export async function holdMailbox(host: string, port: number, user: string, password: string): Promise<BusyHolder> {
  const socket: Socket = connect({ host, port });
  let buffer = '';
  const waiters: Array<(line: string) => void> = [];
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    for (let i = buffer.indexOf('\r\n'); i >= 0; i = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      waiters.shift()?.(line);
    }
  });
  socket.on('error', () => undefined);
  const reply = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply from the POP3 server for ${user}`)), REPLY_TIMEOUT_MS);
      waiters.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  const command = async (text: string): Promise<string> => {
    const answer = reply();
    socket.write(`${text}\r\n`);
    return answer;
  };
  const greeting = await reply();
  if (!greeting.startsWith('+OK')) throw new Error(`unexpected greeting: ${greeting}`);
  if (!(await command(`USER ${user}`)).startsWith('+OK')) throw new Error(`USER refused for ${user}`);
  const pass = await command(`PASS ${password}`);
  if (!pass.startsWith('+OK')) throw new Error(`the side session could not log in as ${user}: ${pass}`);
  const keepAlive = setInterval(() => void command('NOOP').catch(() => undefined), NOOP_EVERY_MS);
  return {
    async release() {
      clearInterval(keepAlive);
      await command('QUIT').catch(() => undefined);
      socket.end();
    },
  };
}
