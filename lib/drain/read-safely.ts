import { LIBRARIES_NOT_LOADED } from './mail-libraries.js';

/**
 * The value, or undefined when a library throws on hostile input (the field is left out).
 * LIBRARIES_NOT_LOADED goes through: the extractor loads them and reads again.
 */
export function safely<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (error) {
    if (error === LIBRARIES_NOT_LOADED) throw error;
    return undefined;
  }
}
