// The UidlLedger contract against the local file ledger (a temp folder; every open() is another
// FileLedger on it, as another process or a restarted run would be).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileLedger } from '../../lib/adapters/local/file-ledger.js';
import { describeLedgerContract } from './ledger-contract.js';

let dir = '';
const opened: FileLedger[] = [];

describeLedgerContract('FileLedger', {
  setup: async () => {
    dir = await mkdtemp(join(tmpdir(), 'popdrain-ledger-contract-'));
  },
  open: () => {
    const ledger = new FileLedger({ dir });
    opened.push(ledger);
    return ledger;
  },
  exclude: {
    'record-concurrent':
      'one writer per mailbox: the file ledger relies on the mailbox lease (lease-race) to serialize writers; ' +
      'unleased writers in several processes at once are outside its contract (file-ledger.ts), and a run never records without the lease',
    'request-marker-race':
      'the same reason: the request marker is the deployment scheduler\'s (DynamoDB); unserialized claimers in several processes ' +
      'race on the file ledger\'s reload-before-write and failed under load',
  },
  teardown: async () => {
    for (const ledger of opened.splice(0)) await ledger.close();
    await rm(dir, { recursive: true, force: true });
  },
});
