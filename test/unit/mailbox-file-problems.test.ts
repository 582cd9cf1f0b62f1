/**
 * The mailbox file's problems, word for word: what `popdrain drain --config`, `cdk synth` and
 * the Lambdas print. The schema is written with zod/mini (lib/drain/zod.ts); these are the
 * issues and messages the full zod gave for the same files before the switch, so a change of
 * library, locale or check order that changes what an operator reads fails here.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseMailboxFile } from '../../lib/drain/config.js';
import { EnvironmentError, readEnvironment } from '../../lambdas/runtime.js';
import * as z from '../../lib/drain/zod.js';

const CASES: [string, unknown, string[]][] = [
  [
    "no mailboxes",
    {"mailboxes": []},
    ["mailboxes: list at least one mailbox"],
  ],
  [
    "unknown top-level key, wrong version",
    {"version": 2, "extra": 1, "mailboxes": [{"id": "a", "host": "pop.example.com", "user": "u", "auth": {"secret": "s"}}]},
    ["version: Invalid input: expected 1", "(top level): Unrecognized key: \"extra\""],
  ],
  [
    "bad id, empty host, unknown key",
    {"mailboxes": [{"id": "bad id!", "host": "", "user": "u", "auth": {"secret": "s"}, "extra": true}]},
    ["mailbox 1 \"bad id!\": id: must be 1-128 characters of letters, digits, \".\", \"_\" or \"-\", starting with a letter or digit", "mailbox 1 \"bad id!\": host: Too small: expected string to have >=1 characters", "mailbox 1 \"bad id!\": host: must be a host name or IP address", "mailbox 1 \"bad id!\": Unrecognized key: \"extra\""],
  ],
  [
    "two password sources, bad variable name",
    {"mailboxes": [{"id": "a", "host": "pop.example.com", "user": "u", "auth": {"secret": "s", "passwordEnv": "1X"}}]},
    ["mailbox 1 \"a\": auth.passwordEnv: must be an environment variable name", "mailbox 1 \"a\": auth: give exactly one of secret (Secrets Manager), passwordEnv, passwordFile, passwordCommand or oauth2"],
  ],
  [
    "oauth2 without endpoint or client",
    {"mailboxes": [{"id": "a", "host": "pop.example.com", "user": "u", "auth": {"oauth2": {"tokenEndpoint": "not a url"}}}]},
    ["mailbox 1 \"a\": auth.oauth2.tokenEndpoint: Invalid URL", "mailbox 1 \"a\": auth.oauth2.clientId: needs clientId or clientIdEnv", "mailbox 1 \"a\": auth.oauth2.clientSecretEnv: client_credentials grant needs clientSecretEnv or clientSecretFile"],
  ],
  [
    "ports, TLS mode and pins",
    {"mailboxes": [{"id": "a", "host": "pop.example.com", "user": "u", "auth": {"secret": "s"}, "port": 1.5, "tls": "ssl", "tlsOptions": {"minVersion": "TLSv1.1", "fingerprint": ["zz"]}}]},
    ["mailbox 1 \"a\": port: Invalid input: expected int, received number", "mailbox 1 \"a\": tls: Invalid option: expected one of \"implicit\"|\"starttls\"|\"insecure-plaintext\"", "mailbox 1 \"a\": tlsOptions.minVersion: Invalid option: expected one of \"TLSv1.2\"|\"TLSv1.3\"", "mailbox 1 \"a\": tlsOptions.fingerprint.0: not a SHA-256 certificate fingerprint (64 hex digits, colons optional)"],
  ],
  [
    "limits and delete policy",
    {"mailboxes": [{"id": "a", "host": "pop.example.com", "user": "u", "auth": {"secret": "s"}, "deletePolicy": {"keepDays": 0}, "limits": {"maxMessageSize": -1, "maxMessagesPerRun": 0, "maxBytesPerRun": true}}]},
    ["mailbox 1 \"a\": deletePolicy.keepDays: Too small: expected number to be >=1", "mailbox 1 \"a\": limits.maxMessageSize: \"-1\" is not a size (e.g. 26214400, \"25MB\", \"1GiB\")", "mailbox 1 \"a\": limits.maxMessagesPerRun: Too small: expected number to be >0", "mailbox 1 \"a\": limits.maxBytesPerRun: Invalid input"],
  ],
  [
    "guard, schedule, placement, window",
    {"mailboxes": [{"id": "a", "host": "pop.example.com", "user": "u", "auth": {"secret": "s"}, "uidlResetGuard": {"minKnown": 0, "minRecognizedFraction": 2}, "schedule": {"everyMinutes": 2000}, "placement": "moon", "pipelineWindow": 0}]},
    ["mailbox 1 \"a\": schedule.everyMinutes: Too big: expected number to be <=1440", "mailbox 1 \"a\": uidlResetGuard.minKnown: Too small: expected number to be >=1", "mailbox 1 \"a\": uidlResetGuard.minRecognizedFraction: Too big: expected number to be <=1", "mailbox 1 \"a\": placement: Invalid option: expected one of \"default\"|\"vpc\"", "mailbox 1 \"a\": pipelineWindow: Too small: expected number to be >=1"],
  ],
  [
    "duplicate ids",
    {"mailboxes": [{"id": "a", "host": "pop.example.com", "user": "u", "auth": {"secret": "s"}}, {"id": "a", "host": "pop.example.com", "user": "u", "auth": {"secret": "s"}}]},
    ["mailbox 2 \"a\": id: duplicate id"],
  ],
];

describe('mailbox file problems', () => {
  for (const [name, file, problems] of CASES) {
    it(name, () => {
      let thrown: unknown;
      try {
        parseMailboxFile(file);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ConfigError);
      expect((thrown as ConfigError).problems).toEqual(problems);
    });
  }

  it('a valid file normalizes as before (defaults, sizes, guard)', () => {
    const [mailbox] = parseMailboxFile({
      defaults: { limits: { maxMessageSize: '25MB' }, deletePolicy: { keepDays: 7 } },
      mailboxes: [{ id: 'a', host: 'pop.example.com', user: 'u', auth: { secret: 's' }, uidlResetGuard: { minKnown: 5 } }],
    });
    expect(mailbox).toMatchObject({
      port: 995,
      tls: 'implicit',
      maxMessageBytes: 25_000_000,
      deletePolicy: { mode: 'keep-days', days: 7 },
      uidlResetGuard: { enabled: true, minKnown: 5 },
      everyMinutes: 5,
      placement: 'default',
      secret: { type: 'secrets-manager', secretId: 's' },
    });
  });
});

describe('Lambda environment problems', () => {
  it('names each missing or bad variable in English', () => {
    const read = () =>
      readEnvironment(
        { POPDRAIN_QUEUE_URL: z.string().check(z.url()), POPDRAIN_TICK_MINUTES: z._default(z.coerce.number().check(z.int(), z.minimum(1)), 5) },
        { POPDRAIN_CONFIG_PATH: 'm.json', POPDRAIN_QUEUE_URL: 'not a url', POPDRAIN_TICK_MINUTES: '0', POPDRAIN_MAILBOX_SOURCE: 'db' },
      );
    expect(read).toThrow(EnvironmentError);
    expect(read).toThrow(
      'invalid Lambda environment: POPDRAIN_LEDGER_TABLE: Invalid input: expected string, received undefined; ' +
        'POPDRAIN_MAILBOX_SOURCE: Invalid option: expected one of "file"|"registry"; POPDRAIN_QUEUE_URL: Invalid URL; ' +
        'POPDRAIN_TICK_MINUTES: Too small: expected number to be >=1',
    );
  });

  it('applies the defaults and coerces numbers', () => {
    const env = readEnvironment({ POPDRAIN_TICK_MINUTES: z._default(z.coerce.number().check(z.int(), z.minimum(1)), 5) }, { POPDRAIN_CONFIG_PATH: 'm.json', POPDRAIN_LEDGER_TABLE: 't' });
    expect(env).toEqual({ POPDRAIN_CONFIG_PATH: 'm.json', POPDRAIN_LEDGER_TABLE: 't', POPDRAIN_MAILBOX_SOURCE: 'file', POPDRAIN_REGISTRY_CACHE_SECONDS: 60, POPDRAIN_TICK_MINUTES: 5 });
  });
});
