import { SaslError, type SaslSession } from './mechanism.js';

/**
 * The LOGIN mechanism (draft-murchison-sasl-login): the server asks for the user name, then for
 * the password. We answer by position, not by the prompt's text, as servers word it differently.
 */
export function loginSession(user: string, password: string): SaslSession {
  let step = 0;
  return {
    mechanism: 'LOGIN',
    initialResponse: () => undefined,
    respond: () => {
      step += 1;
      if (step === 1) return Buffer.from(user, 'utf8').toString('base64');
      if (step === 2) return Buffer.from(password, 'utf8').toString('base64');
      // A third challenge is not part of LOGIN: cancel (the client sends "*").
      throw new SaslError('LOGIN: server sent more than two challenges');
    },
  };
}
