// The MessageStore contract against the file store (a temp folder) and the Maildir store.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileMessageStore } from '../../lib/adapters/local/file-store.js';
import { MaildirStore } from '../../lib/adapters/local/maildir-store.js';
import type { StoreRef } from '../../lib/drain/ports.js';
import { describeStoreContract } from './store-contract.js';

async function readFileRef(ref: StoreRef): Promise<Buffer | undefined> {
  if (ref.type !== 'file') throw new Error(`not a file ref: ${JSON.stringify(ref)}`);
  return readFile(ref.path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
}

let root = '';
const stores: FileMessageStore[] = [];
describeStoreContract('FileMessageStore', {
  setup: async () => {
    root = await mkdtemp(join(tmpdir(), 'popdrain-store-contract-'));
  },
  open: () => {
    const store = new FileMessageStore({ root });
    stores.push(store);
    return store;
  },
  read: readFileRef,
  teardown: async () => {
    for (const store of stores.splice(0)) await store.close();
    await rm(root, { recursive: true, force: true });
  },
});

let maildir = '';
describeStoreContract('MaildirStore', {
  setup: async () => {
    maildir = await mkdtemp(join(tmpdir(), 'popdrain-maildir-contract-'));
  },
  open: () => new MaildirStore({ dir: maildir }),
  read: readFileRef,
  // A Maildir holds mail as local delivery does: LF line ends.
  kept: (bytes) => Buffer.from(bytes.toString('latin1').replace(/\r\n/g, '\n'), 'latin1'),
  teardown: async () => {
    await rm(maildir, { recursive: true, force: true });
  },
  exclude: { put: 'MaildirStore has no put: the engine streams every message into it' },
});
