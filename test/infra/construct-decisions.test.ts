/**
 * The decisions the PopDrain construct takes before it creates anything, as pure functions:
 * the deployment checks and the /tmp size, the tick, the packing of secret ARNs into IAM
 * statements, and the CA files inlined into the shipped mailbox file. No synth.
 */
import { describe, expect, it } from 'vitest';
import { parseMailboxFile, type ConfiguredMailbox } from '../../lib/drain/config.js';
import { checkForDeployment, DEFAULT_EPHEMERAL_MIB } from '../../infra/constructs/deployment-checks.js';
import { inlineCaFiles } from '../../infra/constructs/mailbox-config.js';
import { packBySize } from '../../infra/constructs/secret-grants.js';
import { decideTickMinutes, defaultTickMinutes } from '../../infra/constructs/tick-minutes.js';
import { mailbox } from './support.js';

/** A distinct stand-in PEM per CA file path. */
const pemOf = (path: string): string => `-----BEGIN CERTIFICATE-----\n${Buffer.from(path).toString('base64')}\n-----END CERTIFICATE-----\n`;
const parse = (raw: unknown): ConfiguredMailbox[] => parseMailboxFile(raw, { readFile: pemOf });

describe('checkForDeployment', () => {
  it('accepts Secrets Manager logins by name or ARN and keeps the default /tmp', () => {
    const verdict = checkForDeployment(
      parse({ mailboxes: [mailbox('a'), mailbox('b', { auth: { secret: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:x/y-AbCdEf' } })] }),
      { hasVpc: false },
    );
    expect(verdict).toEqual({ problems: [], ephemeralMib: DEFAULT_EPHEMERAL_MIB });
  });

  it('names every mailbox whose login, secret or placement the deployment cannot serve, in order', () => {
    const verdict = checkForDeployment(
      parse({
        mailboxes: [
          mailbox('env', { auth: { passwordEnv: 'PW' } }),
          mailbox('star', { auth: { secret: 'popdrain/*' } }),
          mailbox('arn', { auth: { secret: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:*' } }),
          mailbox('inside', { placement: 'vpc' }),
        ],
      }),
      { hasVpc: false },
    );
    expect(verdict.problems).toEqual([
      expect.stringMatching(/^mailbox 1 "env": auth\.passwordEnv: /),
      expect.stringMatching(/^mailbox 2 "star": auth\.secret: .* not a Secrets Manager secret name/),
      expect.stringMatching(/^mailbox 3 "arn": auth\.secret: .* not a Secrets Manager secret ARN/),
      expect.stringMatching(/^mailbox 4 "inside": placement: "vpc" needs the vpc prop/),
    ]);
    expect(checkForDeployment(parse({ mailboxes: [mailbox('inside', { placement: 'vpc' })] }), { hasVpc: true }).problems).toEqual([]);
  });

  it('sizes /tmp for the largest message plus headroom, unless a size is given', () => {
    const boxes = parse({ mailboxes: [mailbox('big', { limits: { maxMessageSize: '3GiB' } }), mailbox('bigger', { limits: { maxMessageSize: '4GiB' } })] });
    expect(checkForDeployment(boxes, { hasVpc: false })).toEqual({ problems: [], ephemeralMib: 4096 + 512 });
    expect(checkForDeployment(boxes, { hasVpc: false, ephemeralStorageMib: 8192 })).toEqual({ problems: [], ephemeralMib: 8192 });
    const tooSmall = checkForDeployment(boxes, { hasVpc: false, ephemeralStorageMib: 3500 });
    expect(tooSmall.problems).toEqual([expect.stringMatching(/^mailbox 2 "bigger": limits\.maxMessageSize: 4294967296 bytes does not fit .* 3500 MiB/)]);
    const huge = checkForDeployment(parse({ mailboxes: [mailbox('huge', { limits: { maxMessageSize: '10GiB' } })] }), { hasVpc: false });
    expect(huge.problems).toEqual([expect.stringMatching(/exceeds the 10 GiB/)]);
    expect(huge.ephemeralMib).toBe(DEFAULT_EPHEMERAL_MIB);
  });
});

describe('the tick', () => {
  const boxes = (...minutes: number[]) => minutes.map((everyMinutes, i) => ({ id: `m${i}`, everyMinutes }));

  it('defaults to the gcd of the schedules, at most an hour', () => {
    expect(defaultTickMinutes(boxes(5, 10, 15))).toBe(5);
    expect(defaultTickMinutes(boxes(1440))).toBe(60);
    expect(defaultTickMinutes(boxes(90))).toBe(45);
  });

  it('a requested tick is kept, with the mailboxes it does not divide; out of range is an error', () => {
    expect(decideTickMinutes(undefined, boxes(10, 15))).toEqual({ tickMinutes: 5, uneven: [] });
    expect(decideTickMinutes(10, boxes(10, 15, 25))).toEqual({ tickMinutes: 10, uneven: ['"m1" (15)', '"m2" (25)'] });
    for (const bad of [0, 61, 2.5]) expect(decideTickMinutes(bad, boxes(5)).error).toMatch(/tickMinutes must be a whole number of minutes from 1 to 60/);
  });
});

describe('packBySize', () => {
  it('keeps order and fills each chunk up to the limit', () => {
    expect(packBySize([3, 3, 3, 5, 1, 9], (n) => n, 6)).toEqual([[3, 3], [3], [5, 1], [9]]);
    expect(packBySize([], (n: number) => n, 6)).toEqual([]);
  });

  it('an item larger than the limit gets a chunk of its own', () => {
    expect(packBySize([2, 10, 2], (n) => n, 6)).toEqual([[2], [10], [2]]);
  });
});

describe('inlineCaFiles', () => {
  it('ships the file unchanged when no mailbox names a CA file', () => {
    const raw = { mailboxes: [mailbox('a')] };
    expect(inlineCaFiles(JSON.stringify(raw), parse(raw))).toBeUndefined();
  });

  it('replaces each caFile with the PEM read at synth, leaving other TLS options and mailboxes alone', () => {
    const raw = {
      defaults: { tlsOptions: { caFile: '/etc/ca.pem' } },
      mailboxes: [mailbox('tls', { tlsOptions: { caFile: '/etc/other.pem', servername: 'pop.example.com' } }), mailbox('inherits'), mailbox('own', { tlsOptions: { servername: 'x' } })],
    };
    const shipped = JSON.parse(inlineCaFiles(JSON.stringify(raw), parse(raw))!) as typeof raw & { mailboxes: Array<{ tlsOptions?: unknown }> };
    expect(shipped.defaults).toEqual({ tlsOptions: {} });
    expect(shipped.mailboxes.map((m) => m.tlsOptions)).toEqual([
      { servername: 'pop.example.com', caPem: pemOf('/etc/other.pem') },
      { caPem: pemOf('/etc/ca.pem') },
      { servername: 'x', caPem: pemOf('/etc/ca.pem') },
    ]);
  });
});
