// The credentials contract against LocalCredentials: passwords in files, OAuth2 grants in files
// and the environment (a temp folder).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCredentials } from '../../lib/adapters/local/local-credentials.js';
import { describeCredentialsContract } from './credentials-contract.js';

let dir = '';
const env: NodeJS.ProcessEnv = {};

describeCredentialsContract('LocalCredentials', {
  setup: async () => {
    dir = await mkdtemp(join(tmpdir(), 'popdrain-credentials-contract-'));
  },
  open: () => new LocalCredentials({ env }),
  passwordSecret: async (name, password) => {
    const path = join(dir, name);
    await writeFile(path, `${password}\n`, { mode: 0o600 });
    return { type: 'file', path };
  },
  oauth2Secret: async (name, grant) => {
    const refreshTokenFile = join(dir, `${name}.refresh-token`);
    await writeFile(refreshTokenFile, `${grant.refreshToken}\n`, { mode: 0o600 });
    const clientSecretEnv = `CONTRACT_${name.replace(/\W/g, '_').toUpperCase()}_SECRET`;
    env[clientSecretEnv] = grant.clientSecret;
    return { type: 'oauth2', oauth2: { tokenEndpoint: grant.tokenEndpoint, clientId: grant.clientId, clientSecretEnv, refreshTokenFile } };
  },
  missingSecret: (name) => ({ type: 'file', path: join(dir, `${name}.missing`) }),
  foreignSecret: () => ({ type: 'secrets-manager', secretId: 'pop/elsewhere' }),
  teardown: async () => {
    await rm(dir, { recursive: true, force: true });
  },
});
