/**
 * Open the POP3 session for a run in two steps, so that the engine can dial while it takes the
 * lease and log in only once it holds it: dialSession (credentials from the port, the client's
 * options from the mailbox and the run's options, connect, greeting) and logIn (a refused
 * OAuth2 access token is refreshed once).
 */
import { credentialSecrets, isPop3Error, Pop3Client, type Pop3ClientOptions, type Pop3Credentials } from '../pop3/index.js';
import type { MailboxConfig } from './mailbox.js';
import type { RunContext } from './run-context.js';

/**
 * `deadline`: the hard bound on the whole session (epoch ms), from dialling on; `signal`: closes
 * the session at once, whatever it is doing (connecting included).
 */
export function clientOptionsFor(mailbox: MailboxConfig, options: RunContext['options'], deadline?: number, signal?: AbortSignal): Pop3ClientOptions {
  const clientOptions: Pop3ClientOptions = {
    host: mailbox.host,
    port: mailbox.port,
    tls: mailbox.tls,
    trace: options.trace,
    pipelineWindow: mailbox.pipelineWindow,
    ...options.pop3,
  };
  if (deadline !== undefined) clientOptions.deadline = deadline;
  if (signal !== undefined) clientOptions.signal = signal;
  const tls = mailbox.tlsOptions;
  if (tls !== undefined) {
    clientOptions.tlsOptions = { ca: tls.caPem, servername: tls.servername, minVersion: tls.minVersion };
    if (tls.fingerprints !== undefined) clientOptions.tlsOptions.fingerprints = tls.fingerprints;
  }
  return clientOptions;
}

/** A session dialled (credentials in hand, greeting read) and not yet logged in. */
export interface DialedSession {
  client: Pop3Client;
  credentials: Pop3Credentials;
  options: Pop3ClientOptions;
}

/**
 * Gets the credentials, connects and reads the greeting (and capabilities, STLS): no credential
 * is sent. `deadline` (the run's clock) bounds the whole session. The client is in `ctx.client`
 * as soon as it exists (so a hard stop can close it).
 */
export async function dialSession(ctx: RunContext, deadline?: number, signal?: AbortSignal): Promise<DialedSession> {
  const m = ctx.mailbox;
  const credentials: Pop3Credentials = await ctx.ports.credentials.get(m);
  ctx.secrets.push(...credentialSecrets(credentials));
  // The client keeps time by Date.now(); the run by its clock (a test's may be fake).
  const options = clientOptionsFor(m, ctx.options, deadline === undefined ? undefined : Date.now() + (deadline - ctx.clock.now()), signal);
  const client = await Pop3Client.connect(options);
  ctx.client = client;
  return { client, credentials, options };
}

/**
 * Logs the dialled session in; a refused OAuth2 access token is refreshed once (on a new
 * connection, as the server may close the refused one).
 */
export async function logIn(ctx: RunContext, session: DialedSession): Promise<Pop3Client> {
  const m = ctx.mailbox;
  let { client, credentials } = session;
  for (let attempt = 1; ; attempt++) {
    try {
      await client.login(credentials, { mechanism: m.mechanism });
      ctx.log.debug('logged in', { method: client.authMethod, pipelining: client.pipelining });
      // RFC 2449 EXPIRE 0: the server deletes what is retrieved, whatever the policy says.
      const expire = client.capabilities.expire;
      if (expire?.kind === 'days' && expire.days === 0 && m.deletePolicy.mode !== 'delete') {
        ctx.counters.serverDeletesRetrieved = true;
        ctx.log.warn(`the server announces EXPIRE 0: it deletes every message once retrieved, so the ${m.deletePolicy.mode} policy cannot hold`);
      }
      return client;
    } catch (error) {
      client.close();
      // A cached OAuth2 access token may have expired: get a fresh one, once.
      if (attempt === 1 && 'accessToken' in credentials && isPop3Error(error) && error.code === 'AUTH_FAILED') {
        ctx.log.info('token refused; refreshing it once');
        credentials = await ctx.ports.credentials.get(m, { forceRefresh: true });
        ctx.secrets.push(...credentialSecrets(credentials));
        client = await Pop3Client.connect(session.options);
        ctx.client = client;
        continue;
      }
      throw error;
    }
  }
}
