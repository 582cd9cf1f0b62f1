// LocalCredentials with real files in a temp directory and the token client against a loopback
// OAuth2 token endpoint.
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { LocalCredentials, isReadableByOthers } from '../../lib/adapters/local/local-credentials.js';
import { drainErrorOf as failure } from '../support/drain-error.js';
import {
  CLIENT_ID,
  CLIENT_SECRET,
  dir,
  expectNoSecrets,
  mailbox,
  now,
  PASSWORD,
  RecordingLogger,
  REFRESH_TOKEN,
  setUpCredentialsWorld,
  tokens,
} from '../support/credentials-world.js';

setUpCredentialsWorld();

// ---------------------------------------------------------------------------------------------
describe('LocalCredentials', () => {
  let n = 0;
  const file = (name: string): string => join(dir, `${n}-${name}`);
  beforeEach(() => {
    n += 1;
  });

  it('reads a password from an environment variable', async () => {
    const local = new LocalCredentials({ env: { POP_PASSWORD: PASSWORD } });
    expect(await local.get(mailbox({ type: 'env', variable: 'POP_PASSWORD' }))).toEqual({ user: 'alice@example.com', password: PASSWORD });
  });

  it('says clearly when the variable is unset or empty', async () => {
    const unset = await failure(new LocalCredentials({ env: {} }).get(mailbox({ type: 'env', variable: 'POP_PASSWORD' })));
    expect(unset).toMatchObject({ code: 'CREDENTIALS_FAILED', phase: 'credentials', retryable: false });
    expect(unset.message).toBe('environment variable POP_PASSWORD (the password of mailbox "mbx-1") is not set');
    const empty = await failure(new LocalCredentials({ env: { POP_PASSWORD: '' } }).get(mailbox({ type: 'env', variable: 'POP_PASSWORD' })));
    expect(empty.message).toBe('environment variable POP_PASSWORD (the password of mailbox "mbx-1") is empty');
  });

  it('reads the first line of a password file, without its line ending', async () => {
    const local = new LocalCredentials({ env: {} });
    for (const content of [`${PASSWORD}\r\n`, `${PASSWORD}\n`, PASSWORD, `${PASSWORD}\nsecond line\n`, `${PASSWORD}\r\nignored`]) {
      const path = file(`pw-${Buffer.from(content).toString('hex').slice(-8)}`);
      await writeFile(path, content, { mode: 0o600 });
      expect(await local.get(mailbox({ type: 'file', path }))).toEqual({ user: 'alice@example.com', password: PASSWORD });
    }
    // Spaces are part of a password.
    const spaced = file('spaced');
    await writeFile(spaced, ' pass word \n');
    expect(await local.get(mailbox({ type: 'file', path: spaced }))).toEqual({ user: 'alice@example.com', password: ' pass word ' });
  });

  it('says clearly when the password file is missing, a directory, or empty', async () => {
    const local = new LocalCredentials({ env: {} });
    const missing = await failure(local.get(mailbox({ type: 'file', path: file('missing') })));
    expect(missing).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: false });
    expect(missing.message).toBe(`cannot read the password file ${file('missing')}: it does not exist`);
    const directory = file('a-directory');
    await mkdir(directory);
    expect((await failure(local.get(mailbox({ type: 'file', path: directory })))).message).toBe(
      `cannot read the password file ${directory}: it is a directory`,
    );
    const empty = file('empty');
    await writeFile(empty, '\n');
    expect((await failure(local.get(mailbox({ type: 'file', path: empty })))).message).toBe(
      `the password file ${empty} is empty (the first line holds the password)`,
    );
  });

  it('tells whether a file is readable by others', async () => {
    const path = file('perm');
    await writeFile(path, PASSWORD);
    await chmod(path, 0o600);
    expect(await isReadableByOthers(path)).toBe(false);
    await chmod(path, 0o640);
    expect(await isReadableByOthers(path)).toBe(true);
    await chmod(path, 0o604);
    expect(await isReadableByOthers(path)).toBe(true);
    await chmod(path, 0o700);
    expect(await isReadableByOthers(path)).toBe(false);
    expect(await isReadableByOthers(file('nothing-here'))).toBe(false);
  });

  it('uses a ready access token from the environment', async () => {
    const local = new LocalCredentials({ env: { POP_TOKEN: 'ready-access-token' } });
    expect(await local.get(mailbox({ type: 'oauth2', oauth2: { accessTokenEnv: 'POP_TOKEN' } }))).toEqual({
      user: 'alice@example.com',
      accessToken: 'ready-access-token',
    });
    expect(tokens.requests).toHaveLength(0);
  });

  it('refreshes from a refresh-token file, writes a rotated token back atomically with mode 0600, and caches the access token', async () => {
    tokens.setRotation(true, true);
    const sub = file('tokens');
    await mkdir(sub);
    const rtFile = join(sub, 'refresh-token');
    await writeFile(rtFile, `${REFRESH_TOKEN}\n`, { mode: 0o644 });
    const secretFile = join(sub, 'client-secret');
    await writeFile(secretFile, `${CLIENT_SECRET}\n`, { mode: 0o600 });
    const logger = new RecordingLogger();
    const local = new LocalCredentials({ env: { CLIENT_ID_VAR: CLIENT_ID }, now, logger });
    const mb = mailbox({
      type: 'oauth2',
      oauth2: { tokenEndpoint: tokens.url, clientIdEnv: 'CLIENT_ID_VAR', clientSecretFile: secretFile, refreshTokenFile: rtFile, scope: 'https://mail.google.com/' },
    });

    const creds = await local.get(mb);
    expect(creds).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[0] });
    expect(tokens.requests[0]!.form).toMatchObject({ refresh_token: REFRESH_TOKEN, client_id: CLIENT_ID, client_secret: CLIENT_SECRET, scope: 'https://mail.google.com/' });

    const [rotated] = tokens.validRefreshTokens();
    expect(rotated).toBeDefined();
    expect(rotated).not.toBe(REFRESH_TOKEN);
    expect(await readFile(rtFile, 'utf8')).toBe(`${rotated}\n`);
    expect((await stat(rtFile)).mode & 0o777).toBe(0o600);
    expect((await readdir(sub)).sort()).toEqual(['client-secret', 'refresh-token']); // no temp file left
    expect(logger.records).toEqual([{ level: 'info', message: 'saved a rotated OAuth2 refresh token', fields: { mailboxId: 'mbx-1', path: rtFile } }]);

    // Cached until shortly before expiry.
    expect(await local.get(mb)).toEqual(creds);
    expect(tokens.requests).toHaveLength(1);
    // forceRefresh: a new exchange, with the rotated token from the file.
    const forced = await local.get(mb, { forceRefresh: true });
    expect(forced).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[1] });
    expect(tokens.requests[1]!.form.refresh_token).toBe(rotated);

    // A new process (the next CLI run) reads the file and gets in.
    const nextRun = await new LocalCredentials({ env: { CLIENT_ID_VAR: CLIENT_ID }, now }).get(mb);
    expect(nextRun).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[2] });
  });

  it('keeps a rotated refresh token from the environment in memory, and warns', async () => {
    tokens.setRotation(true, true);
    const logger = new RecordingLogger();
    const local = new LocalCredentials({ env: { RT: REFRESH_TOKEN, CS: CLIENT_SECRET }, now, logger });
    const mb = mailbox({ type: 'oauth2', oauth2: { tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecretEnv: 'CS', refreshTokenEnv: 'RT' } });
    await local.get(mb);
    await local.get(mb, { forceRefresh: true });
    expect(tokens.requests).toHaveLength(2);
    expect(tokens.requests[1]!.form.refresh_token).not.toBe(REFRESH_TOKEN); // the old one is dead; the new one was used
    expect(logger.records.filter((r) => r.level === 'warn')).toHaveLength(2);
    expect(logger.records[0]!.fields).toEqual({ mailboxId: 'mbx-1', variable: 'RT' });
    expect(JSON.stringify(logger.records)).not.toMatch(/rt\./);
  });

  it('uses client credentials from the environment', async () => {
    const local = new LocalCredentials({ env: { CS: CLIENT_SECRET }, now });
    const mb = mailbox({
      type: 'oauth2',
      oauth2: { tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecretEnv: 'CS', scope: 'https://outlook.office365.com/.default' },
    });
    expect(await local.get(mb)).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[0] });
    expect(tokens.requests[0]).toMatchObject({ grantType: 'client_credentials' });
  });

  it('maps token endpoint errors without leaking the refresh token from the file', async () => {
    const rtFile = file('rt-bad');
    await writeFile(rtFile, 'rt.unknown-to-the-server-VALUE\n', { mode: 0o600 });
    const local = new LocalCredentials({ env: { CS: CLIENT_SECRET }, now });
    const mb = mailbox({ type: 'oauth2', oauth2: { tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecretEnv: 'CS', refreshTokenFile: rtFile } });
    const error = await failure(local.get(mb));
    expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: false });
    expect(error.message).toContain('invalid_grant');
    expectNoSecrets(error, ['rt.unknown-to-the-server-VALUE', CLIENT_SECRET]);
  });

  it('sends a Secrets Manager mailbox to --secrets-manager', async () => {
    const error = await failure(new LocalCredentials({ env: {} }).get(mailbox({ type: 'secrets-manager', secretId: 'pop/x' })));
    expect(error).toMatchObject({ code: 'CONFIG_INVALID', phase: 'credentials', retryable: false });
    expect(error.message).toBe('mailbox "mbx-1" uses Secrets Manager (secret "pop/x"); run it with --secrets-manager or in AWS');
  });
});
