/**
 * The UIDL-reset guard's figure, `knownOnServer`: the UIDLs on the server the ledger knows at
 * the end of a run. It starts as the listed messages the ledger knew and changes only when the
 * run records a message (add) or the server deletes one (delete). A rerun with nothing new
 * does neither, and needs only the count: the set of every known UIDL (20,000 strings hashed
 * into a Set, for a count the triage already has) is made on the first change, not before.
 */

/** The part of a Set<string> the run uses (a Set satisfies it). */
export interface KnownUidls {
  add(uidl: string): unknown;
  delete(uidl: string): unknown;
  readonly size: number;
}

/**
 * A set of the `count` UIDLs `list` gives (each once; called at most once, on the first add or
 * delete), behaving as `new Set(list())` would.
 */
export function knownOnServer(count: number, list: () => Iterable<string>): KnownUidls {
  let set: Set<string> | undefined;
  const made = (): Set<string> => (set ??= new Set(list()));
  return {
    add: (uidl) => made().add(uidl),
    delete: (uidl) => made().delete(uidl),
    get size() {
      return set === undefined ? count : set.size;
    },
  };
}
