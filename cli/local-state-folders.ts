/**
 * The local state folders of one process: the adapters (ledger, events, file store) of each
 * output folder, opened on first use and once per folder, so mailboxes of a config file that
 * name their own `out` (or share one) each get theirs, and one folder never has two ledgers.
 */
import { resolve } from 'node:path';
import { createLocalAdapters, type LocalAdapters } from '../lib/adapters/local/index.js';
import type { DrainLogger } from '../lib/drain/ports.js';
import { outDir } from './out-dir.js';

export class LocalStateFolders {
  private readonly opened = new Map<string, LocalAdapters>();

  constructor(
    /** The folder of mailboxes that name none (--out, or the default). */
    readonly defaultDir: string,
    private readonly logger: DrainLogger,
  ) {}

  /** The resolved folder of a mailbox's `out` (or the default). */
  dirFor(out: string | undefined): string {
    return out === undefined ? resolve(this.defaultDir) : outDir(out);
  }

  get(out?: string): LocalAdapters {
    const dir = this.dirFor(out);
    let adapters = this.opened.get(dir);
    if (adapters === undefined) {
      adapters = createLocalAdapters({ out: dir, logger: this.logger });
      this.opened.set(dir, adapters);
    }
    return adapters;
  }

  async close(): Promise<void> {
    const all = [...this.opened.values()];
    this.opened.clear();
    await Promise.all(all.map((a) => a.close()));
  }
}
