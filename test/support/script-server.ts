// The scriptable POP3 server lives in lib/testing so that `npm run demo` can use it with nothing
// but Node installed; tests import it from here.
export * from '../../lib/testing/pop3-server/index.js';
