// The set-up of the scriptable POP3 server's tests (script-server-*.test.ts): a mailbox of three
// messages for alice, servers and raw clients started per test and closed after it (a server
// whose hook or script threw fails the test there).
import tls from 'node:tls';
import { afterEach, expect } from 'vitest';
import { startPop3Server, type MailboxMessage, type Pop3ServerOptions, type Pop3TestServer } from './script-server.js';
import { RawClient } from './raw-pop3-client.js';

export const MSG_DOTS = Buffer.from(
  'From: a@example.test\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\nnormal\r\n.\r\nend\r\n',
  'latin1',
);
export const MSG_TWO = Buffer.from('Subject: two\r\n\r\nbody two\r\n', 'latin1');
export const MSG_NO_FINAL_CRLF = Buffer.from('Subject: three\r\n\r\nno final newline', 'latin1');

function freshMailbox(): MailboxMessage[] {
  return [{ bytes: MSG_DOTS }, { bytes: MSG_TWO, uid: 'uid-two' }, { bytes: MSG_NO_FINAL_CRLF }];
}

const servers: Pop3TestServer[] = [];
const clients: RawClient[] = [];

export async function start(options: Pop3ServerOptions = {}): Promise<Pop3TestServer> {
  const server = await startPop3Server({
    users: { alice: { password: 'alice pw', oauthTokens: ['good-token'] } },
    mailboxes: { alice: freshMailbox() },
    ...options,
  });
  servers.push(server);
  return server;
}

export async function connect(server: Pop3TestServer, tlsOptions?: tls.ConnectionOptions): Promise<RawClient> {
  const client = await RawClient.connect(server, tlsOptions);
  clients.push(client);
  return client;
}

/** Connected, greeted and logged in as alice. */
export async function loggedIn(server: Pop3TestServer): Promise<RawClient> {
  const client = await connect(server);
  expect(await client.readLine()).toMatch(/^\+OK /);
  expect(await client.command('USER alice')).toBe('+OK');
  expect(await client.command('PASS alice pw')).toBe('+OK Logged in.');
  return client;
}

export const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

/** Registers the hook that closes every client and server a test started. */
export function closeAfterEachTest(): void {
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    // close() rejects when a hook or the server itself threw: such a test fails here.
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
}
