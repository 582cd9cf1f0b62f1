/**
 * A mailbox as the engine sees it: validated and normalized (see config.ts for the file
 * format that produces it).
 */
import type { AuthMethod, TlsMode } from '../pop3/index.js';

export type DeletePolicy =
  /** Nothing is deleted; UIDLs are tracked so nothing is fetched twice. */
  | { mode: 'keep' }
  /** Deleted from the server once stored and announced. */
  | { mode: 'delete' }
  /** Deleted once stored, announced, and first seen at least `days` days ago. */
  | { mode: 'keep-days'; days: number };

/** Where the login secret comes from. */
export type SecretSource =
  /** AWS Secrets Manager: a name or ARN of a JSON secret (see docs: password or OAuth2 fields). */
  | { type: 'secrets-manager'; secretId: string }
  /** An environment variable holding the password. */
  | { type: 'env'; variable: string }
  /** A file holding the password (first line; trailing newline ignored). */
  | { type: 'file'; path: string }
  /**
   * A command whose first line of output is the password (one machine only): run without a
   * shell, `argv` as given (`['sh', '-c', line]` when a shell was asked for).
   */
  | { type: 'command'; argv: string[] }
  /** OAuth2 for one machine: an access token, or client credentials and a refresh token. */
  | { type: 'oauth2'; oauth2: LocalOAuth2Source };

export interface LocalOAuth2Source {
  /** An environment variable holding a ready access token. */
  accessTokenEnv?: string;
  tokenEndpoint?: string;
  clientIdEnv?: string;
  clientId?: string;
  clientSecretEnv?: string;
  clientSecretFile?: string;
  refreshTokenEnv?: string;
  refreshTokenFile?: string;
  scope?: string;
  /** 'refresh_token' (default when a refresh token is given) or 'client_credentials'. */
  grantType?: 'refresh_token' | 'client_credentials';
}

export interface UidlResetGuard {
  enabled: boolean;
  /** The guard only applies when the last run left at least this many known messages. */
  minKnown: number;
  /** Trip when fewer than this fraction of those are still recognized. */
  minRecognizedFraction: number;
}

export const DEFAULT_UIDL_RESET_GUARD: UidlResetGuard = { enabled: true, minKnown: 50, minRecognizedFraction: 0.2 };

export interface MailboxConfig {
  id: string;
  host: string;
  port: number;
  tls: TlsMode;
  user: string;
  secret: SecretSource;
  /** 'auto' (default): the strongest method both sides support. */
  mechanism: AuthMethod | 'auto';
  /** `fingerprints`: SHA-256 pins of the server certificate; they replace verification by CA. */
  tlsOptions?: { caPem?: string; servername?: string; minVersion?: 'TLSv1.2' | 'TLSv1.3'; fingerprints?: string[] };
  deletePolicy: DeletePolicy;
  /** Messages larger than this (LIST size) are skipped with an `Email Skipped` event. */
  maxMessageBytes?: number;
  maxMessagesPerRun?: number;
  maxBytesPerRun?: number;
  uidlResetGuard: UidlResetGuard;
  /** Commands in flight when pipelining (default: the client's). */
  pipelineWindow?: number;
}
