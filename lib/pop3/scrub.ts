/**
 * Secrets out of text from outside. A server (POP3 or an OAuth2 token endpoint) may quote what
 * it was sent in its answers: a password, a SASL payload, a token. Before such text reaches an
 * error, a log, the trace or a report, every form a secret in use can take there is replaced:
 * as is, with its symbols stripped, form- and URL-encoded (either hex case), base64 (standard or
 * URL-safe, padded or not), and any base64 run whose decoding holds a secret (SASL PLAIN,
 * XOAUTH2 and OAUTHBEARER payloads carry the secret inside a longer blob). Pure functions.
 */
import type { Pop3Credentials } from './sasl/index.js';

export const REDACTED = '[redacted]';
/** Shorter secrets are not scrubbed: they would match ordinary words. */
const MIN_SECRET_CHARS = 4;
/** A stripped form shorter than this would match ordinary text. */
const MIN_STRIPPED_CHARS = 8;
/** Runs of base64 characters this long or longer are decoded and checked. */
const BASE64_RUN = /[A-Za-z0-9+/_-]{8,}={0,2}/g;

const lowerHex = (s: string): string => s.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
const stripped = (s: string): string => s.replace(/[^\p{L}\p{N}]/gu, '');
/** Symbols stripped as a token-shaped field keeps them (an OAuth `error` code): `\w . -` stay. */
const tokenShaped = (s: string): string => s.replace(/[^\w.-]/g, '');

/** Every literal form of one secret to look for. */
export function secretForms(secret: string): string[] {
  if (secret.length < MIN_SECRET_CHARS) return [];
  const forms = new Set<string>([secret]);
  const form = new URLSearchParams({ s: secret }).toString().slice('s='.length);
  forms.add(form).add(lowerHex(form));
  try {
    const uri = encodeURIComponent(secret);
    forms.add(uri).add(lowerHex(uri));
  } catch {
    // A lone surrogate: URLSearchParams above encoded it as U+FFFD.
  }
  for (const bare of [stripped(secret), tokenShaped(secret)]) if (bare.length >= MIN_STRIPPED_CHARS) forms.add(bare);
  const b64 = Buffer.from(secret, 'utf8').toString('base64');
  forms.add(b64).add(b64.replace(/=+$/, ''));
  forms.add(Buffer.from(secret, 'utf8').toString('base64url'));
  return [...forms];
}

/** A secret set made ready once: its literal forms (longest first) and its stripped forms. */
interface CompiledSecrets {
  readonly source: readonly string[];
  readonly usable: readonly string[];
  readonly forms: readonly string[];
  /** stripped(secret) where it is long enough to look for, else undefined. */
  readonly strippedUsable: readonly (string | undefined)[];
}

/** The last secret set compiled: a run scrubs many texts with the same secrets. */
let lastCompiled: CompiledSecrets | undefined;

function sameSecrets(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function compileSecrets(secrets: readonly string[]): CompiledSecrets {
  if (lastCompiled !== undefined && sameSecrets(lastCompiled.source, secrets)) return lastCompiled;
  const usable = secrets.filter((s) => s.length >= MIN_SECRET_CHARS);
  // Longest first: one form may hold a shorter one.
  const forms = [...new Set(usable.flatMap(secretForms))].sort((a, b) => b.length - a.length);
  const strippedUsable = usable.map((s) => {
    const bare = stripped(s);
    return bare.length >= MIN_STRIPPED_CHARS ? bare : undefined;
  });
  lastCompiled = { source: [...secrets], usable, forms, strippedUsable };
  return lastCompiled;
}

function decodedHolds(run: string, compiled: CompiledSecrets): boolean {
  let decoded: string;
  try {
    decoded = Buffer.from(run.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('latin1');
  } catch {
    return false;
  }
  const utf8 = Buffer.from(decoded, 'latin1').toString('utf8');
  let strippedUtf8: string | undefined;
  return compiled.usable.some((s, i) => {
    if (decoded.includes(s) || utf8.includes(s)) return true;
    const bare = compiled.strippedUsable[i];
    if (bare === undefined) return false;
    strippedUtf8 ??= stripped(utf8);
    return strippedUtf8.includes(bare);
  });
}

/** `text` with every form of every secret replaced by `[redacted]`. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  if (text.length === 0 || secrets.length === 0) return text;
  const compiled = compileSecrets(secrets);
  if (compiled.usable.length === 0) return text;
  let out = text;
  for (const form of compiled.forms) if (out.includes(form)) out = out.split(form).join(REDACTED);
  // A base64 run may hold a secret at any offset (a SASL payload): decode each at its 4 alignments.
  out = out.replace(BASE64_RUN, (run) => {
    for (let shift = 0; shift < 4 && shift < run.length; shift++) {
      if (decodedHolds(run.slice(shift), compiled)) return REDACTED;
    }
    return run;
  });
  return out;
}

/** The secrets a login sends: the password or token, and the user's payload blobs hold them. */
export function credentialSecrets(credentials: Pop3Credentials): string[] {
  return 'accessToken' in credentials ? [credentials.accessToken] : [credentials.password];
}
