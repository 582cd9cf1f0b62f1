/**
 * The README's complete example of the local config format ("### One config file"): the very
 * block is extracted and validated, so the README cannot drift from the schema; and it is a
 * one-machine file, which a deployment refuses.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkForDeployment } from '../../infra/constructs/deployment-checks.js';
import { parseMailboxFile } from '../../lib/drain/config.js';

/** The first ```json block after the heading. */
function readmeExample(): unknown {
  const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8');
  const section = readme.split('### One config file')[1];
  if (section === undefined) throw new Error('README.md has no "### One config file" section');
  const block = /```json\n([\s\S]*?)\n```/.exec(section);
  if (block === null) throw new Error('the section has no json block');
  return JSON.parse(block[1]!);
}

describe("README's local config example", () => {
  const read: string[] = [];
  const mailboxes = parseMailboxFile(readmeExample(), { readFile: (path) => (read.push(path), '-----BEGIN CERTIFICATE-----\n') });

  it('validates, with each local field where the README says', () => {
    expect(mailboxes.map((m) => m.id)).toEqual(['jane', 'work', 'isp']);
    const [jane, work, isp] = mailboxes;
    expect(jane).toMatchObject({ secret: { type: 'env', variable: 'JANE_PASSWORD' }, maildir: '/home/jane/Maildir', out: '/home/jane/.local/share/popdrain', maxTimeMs: 600_000, everyMinutes: 5, port: 995 });
    expect(jane!.maxMessageBytes).toBe(50 * 1000 * 1000);
    expect(work).toMatchObject({ secret: { type: 'command', argv: ['pass', 'show', 'mail/work'] }, mda: ['procmail', '-d', 'jane'], deletePolicy: { mode: 'keep-days', days: 14 }, everyMinutes: 15 });
    expect(work!.tlsOptions?.fingerprints).toHaveLength(1);
    expect(isp).toMatchObject({ tls: 'starttls', port: 110, secret: { type: 'file' }, out: '/home/jane/mail-archive', deletePolicy: { mode: 'delete' }, maxMessagesPerRun: 500, maxBytesPerRun: 200 * 1000 * 1000 });
    expect(read).toEqual(['/home/jane/.config/popdrain/isp-ca.pem']);
  });

  it('is refused by a deployment, naming the local fields', () => {
    const { problems } = checkForDeployment(mailboxes, { hasVpc: false });
    expect(problems.some((p) => p.startsWith('mailbox 1 "jane": auth.passwordEnv'))).toBe(true);
    expect(problems.some((p) => p.startsWith('mailbox 1 "jane": maildir'))).toBe(true);
    expect(problems.some((p) => p.startsWith('mailbox 2 "work": mda'))).toBe(true);
    expect(problems.some((p) => p.startsWith('mailbox 3 "isp": out'))).toBe(true);
  });
});
