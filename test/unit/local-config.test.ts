/**
 * The local config format (lib/drain/config.ts): the deployment's mailbox schema plus fields
 * only one machine can carry out (`out`, `maildir`, `limits.maxTimePerRun`, and the existing
 * password command, MDA, env/file logins). Unknown fields name the field and the mailbox; the
 * deployment (registry entries and the synth-time check) refuses every local-only field.
 */
import { describe, expect, it } from 'vitest';
import { checkForDeployment } from '../../infra/constructs/deployment-checks.js';
import { ConfigError, localOnlySettings, parseMailboxFile } from '../../lib/drain/config.js';
import { parseRegistryMailbox } from '../../lib/drain/registry-mailbox.js';

const box = (extra: Record<string, unknown> = {}) => ({ id: 'jane', host: 'mail.example.com', user: 'jane', auth: { passwordEnv: 'JANE_PW' }, ...extra });

function problemsOf(raw: unknown): string[] {
  try {
    parseMailboxFile(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('accepted');
}

describe('local-only fields', () => {
  it('out, maildir and limits.maxTimePerRun reach the parsed mailbox; defaults apply, a mailbox overrides', () => {
    const [a, b] = parseMailboxFile({
      defaults: { out: '/var/lib/popdrain', limits: { maxTimePerRun: '10m' } },
      mailboxes: [box(), box({ id: 'joe', out: 'joe-state', maildir: '/home/joe/Maildir', limits: { maxTimePerRun: 90 } })],
    });
    expect(a).toMatchObject({ id: 'jane', out: '/var/lib/popdrain', maxTimeMs: 600_000 });
    expect(a!.maildir).toBeUndefined();
    // A mailbox's limits replace the defaults' limits as a whole (as for every other field); a number is seconds.
    expect(b).toMatchObject({ id: 'joe', out: 'joe-state', maildir: '/home/joe/Maildir', maxTimeMs: 90_000 });
    expect(localOnlySettings(a!)).toEqual(['out', 'limits.maxTimePerRun']);
    expect(localOnlySettings(b!)).toEqual(['out', 'maildir', 'limits.maxTimePerRun']);
  });

  it('a mailbox without local fields has none', () => {
    const [m] = parseMailboxFile({ mailboxes: [box()] });
    expect(localOnlySettings(m!)).toEqual([]);
  });

  it('refuses a bad duration, maildir together with mda, and empty folders, naming mailbox and field', () => {
    expect(problemsOf({ mailboxes: [box({ limits: { maxTimePerRun: 'soon' } })] })).toEqual(['mailbox 1 "jane": limits.maxTimePerRun: "soon" is not a duration (e.g. "90s", "10m", "1h")']);
    expect(problemsOf({ mailboxes: [box({ maildir: '/m', mda: 'procmail' })] })).toEqual(['mailbox 1 "jane": maildir: choose maildir or mda, not both']);
    expect(problemsOf({ mailboxes: [box({ out: '' })] })[0]).toMatch(/^mailbox 1 "jane": out: /);
  });

  it('an unknown field is named with its mailbox', () => {
    expect(problemsOf({ mailboxes: [box(), box({ id: 'joe', outdir: '/x' })] })).toEqual(['mailbox 2 "joe": Unrecognized key: "outdir"']);
    expect(problemsOf({ mailboxes: [box({ auth: { passwordEnv: 'X', passwordEval: 'pass x' } })] })).toEqual(['mailbox 1 "jane": auth: Unrecognized key: "passwordEval"']);
  });
});

describe('the deployment refuses local-only fields', () => {
  const secret = { secret: 'popdrain/jane' };
  it.each([
    ['out', { out: '/srv/mail' }],
    ['maildir', { maildir: '/srv/Maildir' }],
    ['limits.maxTimePerRun', { limits: { maxTimePerRun: '5m' } }],
    ['mda', { mda: 'procmail' }],
  ])('a registry entry with %s', (field, extra) => {
    expect(() => parseRegistryMailbox(box({ auth: secret, ...extra }))).toThrow(new RegExp(`mailbox "jane": ${field.replace('.', '\\.')}: not allowed in the registry`));
  });

  it('a registry entry without them is accepted', () => {
    expect(parseRegistryMailbox(box({ auth: secret, limits: { maxMessagesPerRun: 10 } })).mailbox.id).toBe('jane');
  });

  it('the synth-time check names each local-only field of each mailbox', () => {
    const mailboxes = parseMailboxFile({
      mailboxes: [box({ auth: secret, out: '/o', maildir: '/m', limits: { maxTimePerRun: '1m' } }), box({ id: 'joe', auth: secret })],
    });
    const { problems } = checkForDeployment(mailboxes, { hasVpc: false });
    expect(problems.map((p) => p.split(':')[0] + ':' + p.split(':')[1])).toEqual(['mailbox 1 "jane": out', 'mailbox 1 "jane": maildir', 'mailbox 1 "jane": limits.maxTimePerRun']);
  });
});
