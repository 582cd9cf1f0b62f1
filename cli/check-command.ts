/**
 * `popdrain check URL`: connect, show the TLS session, the capabilities and the login methods,
 * log in when credentials are at hand and show the message count and size. Downloads nothing.
 */
import { explainLoginChoice, isPop3Error, Pop3Client, type Pop3TraceEvent } from '../lib/pop3/index.js';
import { capabilityFacts } from './capability-facts.js';
import { resolveMailbox, type ConnectionOptions } from './connection.js';
import { EXIT, UsageError, type ExitCode } from './exit-codes.js';
import { stderrLogger } from './stderr-logger.js';
import { parseMailboxUrl } from './mailbox-url.js';
import { formatBytes } from './progress.js';
import { pop3ExitCode } from './pop3-exit.js';
import { withoutUndefined } from '../lib/drain/without-undefined.js';

export interface CheckOptions extends ConnectionOptions {
  json?: boolean;
  trace?: boolean;
  'insecure-plaintext'?: boolean;
}

export async function runCheck(positionals: string[], o: CheckOptions): Promise<ExitCode> {
  if (positionals.length !== 1) throw new UsageError('check takes one mailbox URL (pop3s://user@host)');
  const url = parseMailboxUrl(positionals[0]!, { insecurePlaintext: o['insecure-plaintext'] === true });
  const resolved = await resolveMailbox(url, o, { interactive: process.stdin.isTTY === true, requireCredentials: false, logger: stderrLogger() });
  for (const w of resolved.warnings) process.stderr.write(`popdrain: ${w}\n`);
  const m = resolved.mailbox;
  const result: Record<string, unknown> = { host: m.host, port: m.port, tls: m.tls };
  const say = (line: string): void => {
    if (o.json !== true) process.stdout.write(`${line}\n`);
  };
  let client: Pop3Client | undefined;
  try {
    client = await Pop3Client.connect({
      host: m.host,
      port: m.port,
      tls: m.tls,
      ...(m.tlsOptions === undefined
        ? {}
        : {
            tlsOptions: {
              ...(m.tlsOptions.caPem ? { ca: m.tlsOptions.caPem } : {}),
              ...(m.tlsOptions.servername ? { servername: m.tlsOptions.servername } : {}),
              ...(m.tlsOptions.fingerprints ? { fingerprints: m.tlsOptions.fingerprints } : {}),
            },
          }),
      ...(o.trace === true ? { trace: (e: Pop3TraceEvent) => process.stderr.write(`${e.direction === 'client' ? 'C:' : e.direction === 'server' ? 'S:' : '--'} ${e.line}\n`) } : {}),
    });
    const tls = client.tlsInfo();
    result.greeting = client.greeting;
    result.tlsSession = tls ?? null;
    result.capabilities = client.capabilities.lines;
    result.saslMechanisms = client.capabilities.sasl;
    result.pipelining = client.pipelining;
    say(`${m.host}:${m.port} (${m.tls})`);
    say(`  greeting: ${client.greeting}`);
    if (tls !== undefined) {
      say(`  TLS: ${tls.protocol ?? '?'} ${tls.cipher}, certificate ${tls.pinned === true ? 'matches a pinned fingerprint' : tls.authorized ? 'verified' : `NOT verified (${tls.authorizationError ?? 'unknown'})`}`);
      if (tls.peerSubject) say(`  certificate: ${tls.peerSubject}; issuer: ${tls.peerIssuer ?? '?'}; valid ${tls.validFrom ?? '?'} to ${tls.validTo ?? '?'}`);
      if (tls.fingerprint256) say(`  fingerprint (SHA-256): ${tls.fingerprint256}`);
    } else {
      say('  TLS: none (plaintext)');
    }
    say(`  capabilities: ${client.capabilities.lines.length > 0 ? client.capabilities.lines.join(', ') : '(CAPA not supported)'}`);
    say(`  SASL mechanisms: ${client.capabilities.sasl.join(' ') || '(none advertised)'}${/<[^>]+>/.test(client.greeting) ? '; APOP available' : ''}`);
    for (const line of capabilityFacts(client.capabilities)) say(`  ${line}`);
    const choice = explainLoginChoice(m.secret.type === 'oauth2' ? 'token' : 'password', m.mechanism, client.serverOffer);
    result.implementation = client.capabilities.implementation ?? null;
    result.loginDelaySeconds = client.capabilities.loginDelaySeconds ?? null;
    result.expire = client.capabilities.expire ?? null;
    result.loginChoice = { method: choice.method ?? null, reason: choice.reason };
    say(`  login method: ${choice.method ?? 'none'}: ${choice.reason}`);
    if (resolved.credentials === undefined) {
      say('  not logged in: no password given (POPDRAIN_PASSWORD, --password-file, or run on a terminal)');
      result.loggedIn = false;
      client.close();
      if (o.json === true) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return EXIT.OK;
    }
    const credentials = await resolved.credentials.get(m);
    await client.login(credentials, { mechanism: m.mechanism });
    const stat = await client.stat();
    result.loggedIn = true;
    result.authMethod = client.authMethod;
    result.messages = stat.count;
    result.bytes = stat.size;
    say(`  logged in with ${client.authMethod ?? '?'}: ${stat.count} messages, ${formatBytes(stat.size)}`);
    await client.quit();
    if (o.json === true) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return EXIT.OK;
  } catch (error) {
    client?.close();
    const code = pop3ExitCode(error);
    if (code === undefined) throw error;
    const hint = isPop3Error(error) ? error.hint : undefined;
    const peer = isPop3Error(error) ? error.peerCertificate : undefined;
    result.error = { code: (error as { code?: string }).code, message: (error as Error).message, ...withoutUndefined({ hint }) };
    if (peer !== undefined) {
      // The certificate the server presented, verified or not: what a person decides on.
      result.presentedCertificate = peer;
      say(`${m.host}:${m.port} (${m.tls})`);
      say(`  certificate presented (NOT verified): ${peer.subject ?? '?'}; issuer: ${peer.issuer ?? '?'}; valid ${peer.validFrom ?? '?'} to ${peer.validTo ?? '?'}`);
      say(`  fingerprint (SHA-256): ${peer.fingerprint256 ?? '?'}`);
    }
    if (o.json === true) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    process.stderr.write(`popdrain: ${(error as Error).message}${hint === undefined ? '' : `\npopdrain: ${hint}`}\n`);
    return code;
  }
}
