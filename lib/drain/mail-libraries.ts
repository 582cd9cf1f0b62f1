/**
 * The mail libraries behind metadata.ts, loaded on first need rather than at import: mailsplit
 * (with the CommonJS libmime, iconv-lite and charset tables it brings), libmime and nodemailer's
 * addressparser take some 50 ms of CPU to import, and a plain text message with plain
 * addresses and an ASCII subject (the bulk of a mailbox, and all of the benchmark's) needs
 * none of them.
 *
 * Code that needs them calls `mailLibraries()`, which throws LIBRARIES_NOT_LOADED until
 * `loadMailLibraries()` has resolved; the extractor catches that, loads, and reads again.
 */
import type Mailsplit from '@zone-eu/mailsplit';
import type Libmime from 'libmime';
import type Addressparser from 'nodemailer/lib/addressparser';

export interface MailLibraries {
  mailsplit: typeof Mailsplit;
  libmime: typeof Libmime;
  addressparser: typeof Addressparser;
}

class LibrariesNotLoadedError extends Error {
  constructor() {
    super('the mail libraries are not loaded yet (call loadMailLibraries() first)');
    this.name = 'LibrariesNotLoadedError';
  }
}

/** Thrown by `mailLibraries()` before the libraries are loaded (one instance, no stack cost). */
export const LIBRARIES_NOT_LOADED: Error = new LibrariesNotLoadedError();

let libraries: MailLibraries | undefined;
let loading: Promise<MailLibraries> | undefined;

/** The libraries, or throw LIBRARIES_NOT_LOADED. */
export function mailLibraries(): MailLibraries {
  if (libraries === undefined) throw LIBRARIES_NOT_LOADED;
  return libraries;
}

export function loadMailLibraries(): Promise<MailLibraries> {
  loading ??= Promise.all([import('@zone-eu/mailsplit'), import('libmime'), import('nodemailer/lib/addressparser')]).then(
    ([mailsplit, libmime, addressparser]) =>
      (libraries = { mailsplit: mailsplit.default, libmime: libmime.default, addressparser: addressparser.default }),
    (error: unknown) => {
      loading = undefined; // a later message may try again
      throw error;
    },
  );
  return loading;
}
