/** Shared pieces of the drain tests: mailboxes, expected served bytes, output inspection. */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readJsonlEvents } from '../../lib/adapters/local/index.js';
import { DEFAULT_UIDL_RESET_GUARD, type MailboxConfig } from '../../lib/drain/mailbox.js';
import type { CredentialsProvider } from '../../lib/drain/ports.js';
import type { Dovecot } from './dovecot.js';

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** What Dovecot serves for a maildir file: LF turned into CRLF, plus CRLF when the file lacks a final newline. */
export function servedForm(stored: Buffer): Buffer {
  const text = stored.toString('latin1').replace(/\r?\n/g, '\r\n');
  return Buffer.from(text.endsWith('\r\n') ? text : `${text}\r\n`, 'latin1');
}

export function dovecotMailbox(dovecot: Dovecot, user: string, extra: Partial<MailboxConfig> = {}): MailboxConfig {
  return {
    id: `mbx-${user}`,
    host: dovecot.host,
    port: dovecot.ports.pop3s,
    tls: 'implicit',
    user,
    secret: { type: 'env', variable: 'UNUSED' },
    mechanism: 'auto',
    tlsOptions: { caPem: dovecot.pki.caCertPem, servername: 'localhost' },
    deletePolicy: { mode: 'keep' },
    uidlResetGuard: DEFAULT_UIDL_RESET_GUARD,
    ...extra,
  };
}

/** Credentials straight from a table (the credential adapters have their own tests). */
export function staticCredentials(passwords: Record<string, string>): CredentialsProvider {
  return {
    get: async (mailbox) => {
      const password = passwords[mailbox.user];
      if (password === undefined) throw new Error(`no test password for ${mailbox.user}`);
      return { user: mailbox.user, password };
    },
  };
}

/** A message with a subject, a body line starting with a dot and a varying size. */
export function testMessage(i: number, tag = 'm', bodyBytes = 200): Buffer {
  const body = `line of ${tag} ${i}\n.dot line\n${'x'.repeat(bodyBytes)}\n`;
  return Buffer.from(
    `From: Sender ${i} <s${i}@example.com>\nTo: r@example.com\nSubject: ${tag} ${i}\nMessage-ID: <${tag}-${i}@example.com>\nDate: Thu, 26 Nov 2026 10:00:00 +0000\n\n${body}`,
  );
}

/** The .eml files under out/<mailboxId>, by name, with their bytes. */
export async function storedFiles(out: string, mailboxId: string): Promise<Map<string, Buffer>> {
  const dir = join(out, mailboxId);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.eml'));
  const files = new Map<string, Buffer>();
  for (const n of names) files.set(n, await readFile(join(dir, n)));
  return files;
}

export async function eventsOf(out: string): Promise<Array<{ id: string; 'detail-type': string; detail: Record<string, unknown> }>> {
  const read = await readJsonlEvents(join(out, 'events.jsonl'));
  return read.events as unknown as Array<{ id: string; 'detail-type': string; detail: Record<string, unknown> }>;
}
