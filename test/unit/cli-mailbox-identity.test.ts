import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LEDGER_SUBDIR } from '../../lib/adapters/local/index.js';
import { chooseDefaultId, defaultMailboxId, formerDefaultMailboxId, identityVerdict } from '../../cli/mailbox-identity.js';
import { defaultStateFolder, xdgStateFolder } from '../../cli/state-folder.js';

describe('the default mailbox id', () => {
  it('comes from user and host: not the scheme or port; host case does not matter; users differ', () => {
    const id = defaultMailboxId('carol', 'mail.example.com');
    expect(id).toMatch(/^carol_mail\.example\.com-[0-9a-f]{8}$/);
    expect(defaultMailboxId('carol', 'MAIL.example.com')).toBe(id);
    expect(defaultMailboxId('Carol', 'mail.example.com')).not.toBe(id);
    expect(defaultMailboxId('carol', 'localhost')).not.toBe(id);
    // The former default held the port, so it differs per port, and from the new one.
    expect(formerDefaultMailboxId('carol', 'mail.example.com', 995)).not.toBe(formerDefaultMailboxId('carol', 'mail.example.com', 110));
    expect(formerDefaultMailboxId('carol', 'mail.example.com', 995)).not.toBe(id);
  });

  it('continues the former default only when it alone has runs recorded', () => {
    const ids = { current: 'new', former: 'old' };
    expect(chooseDefaultId(ids, { current: false, former: true })).toEqual({ id: 'old', migrated: true });
    expect(chooseDefaultId(ids, { current: true, former: true })).toEqual({ id: 'new', migrated: false });
    expect(chooseDefaultId(ids, { current: false, former: false })).toEqual({ id: 'new', migrated: false });
    expect(chooseDefaultId(ids, { current: true, former: false })).toEqual({ id: 'new', migrated: false });
  });
});

describe('identityVerdict', () => {
  it('stops when at least half of the listed UIDLs are recorded under one other id, and names the one with most', () => {
    expect(identityVerdict({ listed: 40, recordedHere: 0, recordedElsewhere: [{ id: 'a', recorded: 5 }, { id: 'b', recorded: 20 }] })).toEqual({
      kind: 'stop',
      otherId: 'b',
      recorded: 20,
      listed: 40,
    });
    expect(identityVerdict({ listed: 40, recordedHere: 0, recordedElsewhere: [{ id: 'a', recorded: 19 }] })).toEqual({ kind: 'proceed' });
  });

  it('proceeds when anything is recorded under its own id, or nothing is listed', () => {
    expect(identityVerdict({ listed: 40, recordedHere: 1, recordedElsewhere: [{ id: 'a', recorded: 40 }] })).toEqual({ kind: 'proceed' });
    expect(identityVerdict({ listed: 0, recordedHere: 0, recordedElsewhere: [{ id: 'a', recorded: 0 }] })).toEqual({ kind: 'proceed' });
    expect(identityVerdict({ listed: 3, recordedHere: 0, recordedElsewhere: [] })).toEqual({ kind: 'proceed' });
  });
});

describe('the default state folder', () => {
  it('is $XDG_DATA_HOME/popdrain when that is absolute, else ~/.local/share/popdrain', () => {
    expect(xdgStateFolder({ XDG_DATA_HOME: '/data' }, '/home/x')).toBe('/data/popdrain');
    expect(xdgStateFolder({ XDG_DATA_HOME: 'relative' , HOME: '/home/y' }, '/home/x')).toBe('/home/y/.local/share/popdrain');
    expect(xdgStateFolder({}, '/home/x')).toBe('/home/x/.local/share/popdrain');
  });

  it('does not depend on the current directory, unless it holds the former default with a ledger', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'popdrain-folder-'));
    try {
      expect(defaultStateFolder({ XDG_DATA_HOME: '/data' }, cwd)).toEqual({ dir: '/data/popdrain' });
      await mkdir(join(cwd, 'popdrain-data'));
      expect(defaultStateFolder({ XDG_DATA_HOME: '/data' }, cwd)).toEqual({ dir: '/data/popdrain' });
      await mkdir(join(cwd, 'popdrain-data', LEDGER_SUBDIR), { recursive: true });
      const used = defaultStateFolder({ XDG_DATA_HOME: '/data' }, cwd);
      expect(used.dir).toBe(join(cwd, 'popdrain-data'));
      expect(used.notice).toContain('/data/popdrain');
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
