/**
 * The AUTHORIZATION state: USER/PASS, APOP, AUTH (hooks first, then the SASL exchange), STLS,
 * and the login that follows good credentials (hooks, the maildrop lock, the snapshot).
 */
import { createHash } from 'node:crypto';
import type { LoginMethod } from './hooks.js';
import { loadMaildrop } from './mailbox.js';
import { runSaslMechanism, type SaslOutcome } from './sasl.js';
import type { Session } from './session.js';
import { answerStls } from './tls.js';

const AUTH_FAILED = '-ERR [AUTH] Authentication failed';

/** USER, PASS, APOP, AUTH or STLS, in AUTHORIZATION. */
export async function authorizationCommand(session: Session, verb: string, args: string[], line: string): Promise<void> {
  if (verb === 'USER') return userCommand(session, args);
  if (verb === 'PASS') return passCommand(session, line);
  if (verb === 'APOP') return apopCommand(session, args);
  if (verb === 'AUTH') return authCommand(session, args);
  if (await answerStls(session.conn, session.server.features, session.server.secureContext)) {
    session.pendingUser = undefined;
  }
}

async function userCommand(session: Session, args: string[]): Promise<void> {
  if (!session.server.features.user) return session.conn.writeLine('-ERR USER/PASS not supported');
  const name = args[0];
  if (name === undefined || args.length > 1) return session.conn.writeLine('-ERR Syntax: USER name');
  session.pendingUser = name;
  await session.conn.writeLine('+OK');
}

async function passCommand(session: Session, line: string): Promise<void> {
  const user = session.pendingUser;
  session.pendingUser = undefined;
  if (!session.server.features.user) return session.conn.writeLine('-ERR USER/PASS not supported');
  if (user === undefined) return session.conn.writeLine('-ERR No user name given (USER first)');
  // RFC 1939 allows spaces in the password: everything after "PASS ".
  const password = line.replace(/^\s*\S+ ?/, '');
  if (!session.conn.checkPassword(user, password)) return session.conn.writeLine(AUTH_FAILED);
  await login(session, user, 'USER');
}

async function apopCommand(session: Session, args: string[]): Promise<void> {
  const { server, conn } = session;
  if (!server.features.apop || session.apopTimestamp === undefined) {
    return conn.writeLine('-ERR APOP not available');
  }
  const [user, digest] = args;
  if (user === undefined || digest === undefined || args.length !== 2) {
    return conn.writeLine('-ERR Syntax: APOP name digest');
  }
  const account = Object.hasOwn(server.users, user) ? server.users[user] : undefined;
  const expected =
    account === undefined
      ? undefined
      : createHash('md5').update(session.apopTimestamp + account.password, 'utf8').digest('hex');
  if (expected === undefined || digest.toLowerCase() !== expected) return conn.writeLine(AUTH_FAILED);
  await login(session, user, 'APOP');
}

async function authCommand(session: Session, args: string[]): Promise<void> {
  const { conn } = session;
  const offered = session.server.features.sasl;
  if (args.length === 0) return conn.writeMultiline('+OK Supported mechanisms follow', offered);
  if (args.length > 2) return conn.writeLine('-ERR Syntax: AUTH mechanism [initial-response]');
  const mechanism = (args[0] ?? '').toUpperCase();
  const initialResponse = args[1] === undefined ? undefined : args[1] === '=' ? '' : args[1];
  conn.sensitive = true;
  let outcome: SaslOutcome;
  try {
    const hooked = await session.callHooks((h) => h.onAuth?.(conn, mechanism, initialResponse, session));
    if (hooked === true) return;
    if (hooked !== undefined) return await login(session, hooked.user, 'SASL', hooked.response);
    if (!offered.includes(mechanism)) return await conn.writeLine('-ERR Unsupported authentication mechanism');
    outcome = await runSaslMechanism(conn, session.server.users, mechanism, initialResponse);
  } finally {
    conn.sensitive = false;
  }
  switch (outcome.kind) {
    case 'ok':
      return login(session, outcome.user, 'SASL');
    case 'failed':
      return conn.writeLine(AUTH_FAILED);
    case 'cancelled':
      return conn.writeLine('-ERR Authentication cancelled');
    case 'malformed':
      return conn.writeLine('-ERR Malformed SASL response');
    case 'closed':
      return;
  }
}

/** Credentials are good: ask the hooks, lock the maildrop, enter TRANSACTION. */
async function login(session: Session, user: string, method: LoginMethod, okLine = '+OK Logged in.'): Promise<void> {
  const { conn, server } = session;
  const verdict = await session.callHooks((h) => h.onLogin?.(conn, user, method, session));
  if (verdict === true) return;
  if (typeof verdict === 'string' && !verdict.startsWith('+OK')) return conn.writeLine(verdict);
  const holder = server.locks.get(user);
  if (holder !== undefined && holder !== session.id) {
    return conn.writeLine('-ERR [IN-USE] Mailbox is locked by another session');
  }
  server.locks.set(user, session.id);
  session.user = user;
  session.phase = 'TRANSACTION';
  session.messages = loadMaildrop((server.mailboxes[user] ??= []), server.assignedUids);
  await conn.writeLine(typeof verdict === 'string' ? verdict : okLine);
}
