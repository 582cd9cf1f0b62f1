/**
 * `npm run demo`: a local POP3 server (in this process, over TLS, on 127.0.0.1) seeded with
 * sample mail, drained by the real `popdrain drain` command into ./demo-output; then a second
 * run that fetches nothing new, `popdrain status`, and a few of the events a subscriber would see.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPop3Server, type MailboxMessage } from '../lib/testing/pop3-server/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = resolve(process.cwd(), 'demo-output');
const cli = join(root, 'dist/cli/main.js');
const pki = join(root, 'demo/pki');

const crlf = (text: string): Buffer => Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'utf8');

function sampleMail(): MailboxMessage[] {
  const date = 'Thu, 26 Nov 2026 09:00:00 +0000';
  const messages: MailboxMessage[] = [];
  const people = ['Ada Lovelace <ada@example.com>', 'Grace Hopper <grace@example.org>', '=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>'];
  for (let i = 1; i <= 12; i++) {
    messages.push({
      bytes: crlf(
        `From: ${people[i % 3]}\nTo: support@example.com\nSubject: Ticket #${1000 + i}: printer on floor ${i}\n` +
          `Message-ID: <ticket-${i}@example.com>\nDate: ${date}\nContent-Type: text/plain; charset=utf-8\n\n` +
          `Hello,\n\nThe printer on floor ${i} is jammed again.\n.\nA line that starts with a dot, kept byte for byte.\n`,
      ),
    });
  }
  const attachment = Buffer.alloc(30_000, 7).toString('base64').replace(/(.{76})/g, '$1\n');
  messages.push({
    bytes: crlf(
      `From: Ada Lovelace <ada@example.com>\nTo: support@example.com\nSubject: =?UTF-8?B?UXVhcnRlcmx5IHJlcG9ydCDwn5OK?=\n` +
        `Message-ID: <report@example.com>\nDate: ${date}\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b1"\n\n` +
        `--b1\nContent-Type: text/plain; charset=utf-8\n\nThe report is attached.\n--b1\n` +
        `Content-Type: application/pdf; name="report.pdf"\nContent-Disposition: attachment; filename="report.pdf"\nContent-Transfer-Encoding: base64\n\n${attachment}\n--b1--\n`,
    ),
  });
  messages.push({
    bytes: crlf(
      `From: Backup <backup@example.com>\nTo: support@example.com\nSubject: Nightly dump (too large for this demo's --max-size)\n` +
        `Message-ID: <dump@example.com>\nDate: ${date}\n\n${'0123456789abcdef'.repeat(80_000).replace(/(.{64})/g, '$1\n')}`,
    ),
  });
  return messages;
}

/** Run the CLI as a child process (asynchronously: the demo server lives in this process). */
function run(args: string[]): Promise<number> {
  process.stdout.write(`\n$ popdrain ${args.join(' ')}\n`);
  const child = spawn(process.execPath, [cli, ...args], { stdio: 'inherit', env: { ...process.env, POPDRAIN_PASSWORD: 'demo-password' } });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
}

async function main(): Promise<void> {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build`);
  rmSync(out, { recursive: true, force: true });
  const server = await startPop3Server({
    tls: { key: readFileSync(join(pki, 'server.key')), cert: readFileSync(join(pki, 'server.pem')) },
    implicitTls: true,
    users: { demo: { password: 'demo-password' } },
    mailboxes: { demo: sampleMail() },
    features: { sasl: ['PLAIN', 'LOGIN'] },
  });
  process.stdout.write(`A demo POP3 server is listening on 127.0.0.1:${server.port} (implicit TLS), with 14 messages for "demo".\n`);
  const url = `pop3s://demo@127.0.0.1:${server.port}`;
  const common = ['--id', 'demo', '--ca', join(pki, 'ca.pem'), '--out', out, '--max-size', '1MB'];
  try {
    const first = await run(['drain', url, ...common]);
    const second = await run(['drain', url, ...common]);
    await run(['status', '--out', out]);
    if (first !== 0 || second !== 0) throw new Error(`popdrain exited ${first}, ${second}`);
  } finally {
    await server.close();
  }
  const events = readFileSync(join(out, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { 'detail-type': string; detail: Record<string, unknown> });
  const show = [
    events.find((e) => e['detail-type'] === 'Email Stored' && JSON.stringify(e.detail).includes('report.pdf')),
    events.find((e) => e['detail-type'] === 'Email Skipped'),
    events.find((e) => e['detail-type'] === 'Mailbox Drained'),
  ].filter((e) => e !== undefined);
  process.stdout.write(`\nA few of the ${events.length} events in ${join(out, 'events.jsonl')} (one JSON object per line):\n`);
  for (const e of show) process.stdout.write(`${JSON.stringify(e, null, 2)}\n`);
  process.stdout.write(`\nThe messages are in ${out}/<mailbox id>/*.eml, exactly as the server sent them.\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
