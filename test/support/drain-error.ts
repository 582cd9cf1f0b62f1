// The DrainError a promise rejects with; the test fails if it resolves or rejects otherwise.
import { expect } from 'vitest';
import { DrainError } from '../../lib/drain/errors.js';

export async function drainErrorOf(promise: Promise<unknown>): Promise<DrainError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(DrainError);
    return error as DrainError;
  }
  throw new Error('expected a DrainError, but the call succeeded');
}
