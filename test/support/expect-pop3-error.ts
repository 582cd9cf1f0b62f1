/** Awaits a promise that must reject with a Pop3Error of `code` (the POP3 client tests). */
import { expect } from 'vitest';
import { Pop3Error } from '../../lib/pop3/index.js';

export async function expectPop3Error(promise: Promise<unknown>, code: string): Promise<Pop3Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Pop3Error);
  expect((error as Pop3Error).code).toBe(code);
  return error as Pop3Error;
}
