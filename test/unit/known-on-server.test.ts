// knownOnServer: a set of the known listed UIDLs that lists them only when the run changes it.
import { describe, expect, it } from 'vitest';
import { knownOnServer } from '../../lib/drain/known-on-server.js';

describe('knownOnServer', () => {
  it('answers the count without listing the UIDLs while nothing changes', () => {
    let listed = 0;
    const known = knownOnServer(3, () => {
      listed++;
      return ['a', 'b', 'c'];
    });
    expect(known.size).toBe(3);
    expect(listed).toBe(0);
  });

  it('behaves as a Set of the listed UIDLs once changed, listing them once', () => {
    const steps: Array<['add' | 'delete', string]> = [['add', 'd'], ['add', 'a'], ['delete', 'b'], ['delete', 'x'], ['add', 'b'], ['delete', 'd'], ['add', 'e']];
    let listed = 0;
    const known = knownOnServer(3, () => {
      listed++;
      return ['a', 'b', 'c'];
    });
    const reference = new Set(['a', 'b', 'c']);
    for (const [op, uidl] of steps) {
      known[op](uidl);
      reference[op](uidl);
      expect(known.size, `${op} ${uidl}`).toBe(reference.size);
    }
    expect(listed).toBe(1);
  });

  it('starts from the listed UIDLs on a delete first', () => {
    const known = knownOnServer(2, () => ['a', 'b']);
    known.delete('a');
    expect(known.size).toBe(1);
    known.add('a');
    known.add('a');
    expect(known.size).toBe(2);
  });
});
