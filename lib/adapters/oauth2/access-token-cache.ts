/**
 * Access tokens kept until shortly before they expire, one per key, with at most one token
 * request in flight per key: two logins that need the same token at once share one request
 * (which matters when the server rotates refresh tokens and honours each only once).
 */

/** A cached token is renewed this long before it expires (at most half its lifetime). */
export const TOKEN_RENEW_MARGIN_MS = 5 * 60_000;

export interface IssuedToken {
  accessToken: string;
  /** Epoch ms. */
  expiresAt: number;
}

interface Entry {
  accessToken: string;
  /** Epoch ms after which the token is no longer handed out. */
  renewAt: number;
}

export class AccessTokenCache {
  private readonly tokens = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<string>>();

  constructor(private readonly now: () => number) {}

  /**
   * The cached token of `key` while it is fresh, else one from `issue` (shared by concurrent
   * callers). `forceRefresh` ignores the cached token, not a request already in flight (that
   * one is fresh by definition).
   */
  async get(key: string, forceRefresh: boolean, issue: () => Promise<IssuedToken>): Promise<string> {
    const cached = this.tokens.get(key);
    if (!forceRefresh && cached !== undefined && this.now() < cached.renewAt) return cached.accessToken;
    const running = this.inFlight.get(key);
    if (running !== undefined) return running;

    const issuedAt = this.now();
    const request = issue()
      .then((token) => {
        const lifetime = Math.max(0, token.expiresAt - issuedAt);
        const margin = Math.min(TOKEN_RENEW_MARGIN_MS, lifetime / 2);
        this.tokens.set(key, { accessToken: token.accessToken, renewAt: token.expiresAt - margin });
        return token.accessToken;
      })
      .finally(() => {
        this.inFlight.delete(key);
      });
    this.inFlight.set(key, request);
    if (forceRefresh) this.tokens.delete(key);
    return request;
  }

  /** Forget a key's token (after the server refused it). */
  invalidate(key: string): void {
    this.tokens.delete(key);
  }
}
