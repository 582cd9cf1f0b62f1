/**
 * Mailbox leases on one machine, in the ledger's folder. They guard against two runs draining
 * one mailbox at once (overlapping cron runs, a crashed run's successor); they are not a
 * distributed lock.
 *
 * A lease is a file `<mailboxId>.lease.<generation>` holding {owner, pid, host, expiresAt}; the
 * highest generation present is the lease, lower ones are leftovers. Every lock file appears
 * complete: it is written under a temp name first (O_EXCL), then `link()`ed to its name, which
 * fails with EEXIST when that generation exists. So:
 *
 * - Acquire reads the highest generation g. Held by another owner, unexpired, and (on this
 *   host) its process alive: busy. Otherwise (none, expired, released, its process gone, or
 *   unreadable after a power loss) link generation g+1. Of several runs that judged g stale,
 *   exactly one creates g+1; the others see EEXIST and look again. After linking, the winner
 *   checks that no higher generation appeared (a run that read an older g links a number
 *   that is not the highest and loses), then removes the generations below its own.
 * - Renew rewrites our generation (temp + rename) if it is still the highest and ours, then
 *   checks again; release marks it released the same way. Generations are never removed by
 *   release, so numbers only grow and "highest" stays meaningful.
 *
 * Two holders at once are possible only when one legitimately judged the other's lease expired
 * (its holder failed to renew in time); that holder learns so at its next renewal: LEASE_HELD.
 * Lock files are never fsynced: after a power loss an empty or unreadable one counts as stale,
 * and every lease expires anyway.
 */
import { randomBytes } from 'node:crypto';
import { link, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DrainError } from '../../drain/errors.js';
import type { Lease } from '../../drain/ports.js';
import { errnoCode, FILE_MODE, isRetryableFsError, processExists, type DirectoryMaker } from './durable-fs.js';
import { fsFailureText } from './fs-failure-text.js';

const LOCK_FORMAT_VERSION = 1;
/** Rounds of the look / link loop before a contended lease is reported as busy. */
const MAX_ACQUIRE_ROUNDS = 20;

interface LockFile {
  v: number;
  mailboxId: string;
  owner: string;
  pid: number;
  host: string;
  expiresAt: number;
  /** Set by release: the lease is free (the file stays, to keep generations growing). */
  released?: boolean;
}

interface CurrentLock {
  generation: number;
  /** Undefined when the file does not parse (its data never reached the disk). */
  lock: LockFile | undefined;
}

function leaseError(action: string, mailboxId: string, cause: unknown): DrainError {
  if (cause instanceof DrainError) return cause;
  const reason = fsFailureText(cause);
  return new DrainError('LEDGER_FAILED', `cannot ${action} the lease of mailbox ${mailboxId}: ${reason}`, {
    phase: 'lease',
    retryable: isRetryableFsError(cause),
    cause,
  });
}

function parseLock(raw: string): LockFile | undefined {
  try {
    const value = JSON.parse(raw) as Partial<LockFile>;
    if (typeof value.owner !== 'string' || typeof value.expiresAt !== 'number' || typeof value.pid !== 'number') {
      return undefined;
    }
    return value as LockFile;
  } catch {
    return undefined;
  }
}

export class FileLeases {
  private readonly host = hostname();
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(
    private readonly dir: string,
    private readonly dirs: DirectoryMaker,
  ) {}

  acquire(mailboxId: string, owner: string, ttlMs: number, now: number): Promise<Lease | undefined> {
    return this.serialize(mailboxId, () =>
      this.doAcquire(mailboxId, owner, ttlMs, now).catch((error: unknown) => {
        throw leaseError('acquire', mailboxId, error);
      }),
    );
  }

  renew(lease: Lease, ttlMs: number, now: number): Promise<Lease> {
    return this.serialize(lease.mailboxId, () =>
      this.doRenew(lease, ttlMs, now).catch((error: unknown) => {
        throw leaseError('renew', lease.mailboxId, error);
      }),
    );
  }

  release(lease: Lease): Promise<void> {
    return this.serialize(lease.mailboxId, () =>
      this.doRelease(lease).catch((error: unknown) => {
        throw leaseError('release', lease.mailboxId, error);
      }),
    );
  }

  async holder(mailboxId: string, now: number): Promise<Lease | undefined> {
    let current: CurrentLock | undefined;
    try {
      current = await this.current(mailboxId);
    } catch (error) {
      throw leaseError('read', mailboxId, error);
    }
    const lock = current?.lock;
    if (lock === undefined || !this.isLive(lock, now)) return undefined;
    return { mailboxId, owner: lock.owner, expiresAt: lock.expiresAt };
  }

  private async doAcquire(mailboxId: string, owner: string, ttlMs: number, now: number): Promise<Lease | undefined> {
    await this.dirs.ensure(this.dir);
    const mine = this.lockFor(mailboxId, owner, now + ttlMs);
    const temp = await this.writeTemp(mailboxId, mine);
    try {
      for (let round = 0; round < MAX_ACQUIRE_ROUNDS; round++) {
        const current = await this.current(mailboxId);
        const lock = current?.lock;
        if (lock !== undefined && lock.owner !== owner && this.isLive(lock, now)) return undefined;
        const generation = (current?.generation ?? 0) + 1;
        try {
          await link(temp, this.lockPath(mailboxId, generation));
        } catch (error) {
          if (errnoCode(error) === 'EEXIST') continue; // another run took this generation: look again
          throw error;
        }
        const generations = await this.generations(mailboxId);
        if (generations[0] !== generation) {
          // We linked a generation below the highest: a leftover, and not the lease.
          await unlink(this.lockPath(mailboxId, generation)).catch(() => undefined);
          continue;
        }
        for (const old of generations.slice(1)) await unlink(this.lockPath(mailboxId, old)).catch(() => undefined);
        return { mailboxId, owner, expiresAt: mine.expiresAt };
      }
      return undefined;
    } finally {
      await unlink(temp).catch(() => undefined);
    }
  }

  private async doRenew(lease: Lease, ttlMs: number, now: number): Promise<Lease> {
    const current = await this.current(lease.mailboxId);
    const lock = current?.lock;
    if (current === undefined || lock === undefined || lock.owner !== lease.owner || lock.released === true) {
      throw this.lost(lease, lock);
    }
    const renewed: LockFile = { ...lock, pid: process.pid, host: this.host, expiresAt: now + ttlMs };
    await this.rewrite(lease.mailboxId, current.generation, renewed);
    return { mailboxId: lease.mailboxId, owner: lease.owner, expiresAt: renewed.expiresAt };
  }

  private async doRelease(lease: Lease): Promise<void> {
    const current = await this.current(lease.mailboxId);
    const lock = current?.lock;
    if (current === undefined || lock === undefined || lock.owner !== lease.owner || lock.released === true) return;
    await this.rewrite(lease.mailboxId, current.generation, { ...lock, released: true, expiresAt: 0 }).catch(
      (error: unknown) => {
        if (!(error instanceof DrainError && error.code === 'LEASE_HELD')) throw error;
      },
    );
  }

  /** Replace our generation's content; LEASE_HELD when a higher generation exists after. */
  private async rewrite(mailboxId: string, generation: number, lock: LockFile): Promise<void> {
    const temp = await this.writeTemp(mailboxId, lock);
    const path = this.lockPath(mailboxId, generation);
    try {
      await rename(temp, path);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw error;
    }
    const generations = await this.generations(mailboxId);
    if (generations[0] !== generation) {
      // Taken over between our look and our rename: what we wrote is a leftover.
      await unlink(path).catch(() => undefined);
      const current = await this.current(mailboxId);
      throw this.lost({ mailboxId, owner: lock.owner, expiresAt: lock.expiresAt }, current?.lock);
    }
  }

  private isLive(lock: LockFile, now: number): boolean {
    if (lock.released === true || lock.expiresAt <= now) return false;
    if (lock.host === this.host && lock.pid !== process.pid && !processExists(lock.pid)) return false;
    return true;
  }

  private lost(lease: Lease, holder: LockFile | undefined): DrainError {
    const by = holder === undefined || holder.released === true ? 'nobody holds it now' : `now held by ${holder.owner}`;
    return new DrainError('LEASE_HELD', `the lease of mailbox ${lease.mailboxId} was lost (${by})`, {
      phase: 'lease',
      retryable: false,
    });
  }

  private lockFor(mailboxId: string, owner: string, expiresAt: number): LockFile {
    return { v: LOCK_FORMAT_VERSION, mailboxId, owner, pid: process.pid, host: this.host, expiresAt };
  }

  private async writeTemp(mailboxId: string, lock: LockFile): Promise<string> {
    const temp = join(this.dir, `.${mailboxId}.lease.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await writeFile(temp, `${JSON.stringify(lock)}\n`, { flag: 'wx', mode: FILE_MODE });
    } catch (error) {
      // Created but not written (ENOSPC, EDQUOT): no stale temp file stays behind.
      if (errnoCode(error) !== 'EEXIST') await unlink(temp).catch(() => undefined);
      throw error;
    }
    return temp;
  }

  /** The generations present, highest first. */
  private async generations(mailboxId: string): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return [];
      throw error;
    }
    const prefix = `${mailboxId}.lease.`;
    const out: number[] = [];
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const rest = name.slice(prefix.length);
      if (/^[1-9][0-9]{0,14}$/.test(rest)) out.push(Number(rest));
    }
    return out.sort((a, b) => b - a);
  }

  /** The highest generation and its lock, if any. */
  private async current(mailboxId: string): Promise<CurrentLock | undefined> {
    for (let round = 0; ; round++) {
      const generation = (await this.generations(mailboxId))[0];
      if (generation === undefined) return undefined;
      try {
        const raw = await readFile(this.lockPath(mailboxId, generation), 'utf8');
        return { generation, lock: parseLock(raw) };
      } catch (error) {
        // Removed as a leftover between our listing and our read: list again.
        if (errnoCode(error) !== 'ENOENT' || round >= MAX_ACQUIRE_ROUNDS) throw error;
      }
    }
  }

  private lockPath(mailboxId: string, generation: number): string {
    return join(this.dir, `${mailboxId}.lease.${generation}`);
  }

  /** One lease operation per mailbox at a time within this process. */
  private serialize<T>(mailboxId: string, op: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(mailboxId) ?? Promise.resolve();
    const next = previous.then(op, op);
    const settled = next.catch(() => undefined);
    this.chains.set(mailboxId, settled);
    void settled.then(() => {
      if (this.chains.get(mailboxId) === settled) this.chains.delete(mailboxId);
    });
    return next;
  }
}
