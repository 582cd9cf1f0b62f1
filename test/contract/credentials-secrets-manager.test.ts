// The credentials contract against SecretsManagerCredentials with the real SecretsManagerClient
// and the loopback AWS JSON endpoint (which keeps secrets and their versions).
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SecretsManagerCredentials } from '../../lib/adapters/aws/secrets-manager-credentials.js';
import { startAwsJsonEndpoint, type AwsJsonEndpoint } from '../../testkit/aws/json-endpoint.js';
import { describeCredentialsContract } from './credentials-contract.js';

const FAKE_CREDENTIALS = { accessKeyId: 'AKIDCONTRACTFAKE', secretAccessKey: 'contract-fake-secret' };
let endpoint: AwsJsonEndpoint | undefined;
const clients: SecretsManagerClient[] = [];

describeCredentialsContract('SecretsManagerCredentials', {
  setup: async () => {
    endpoint = await startAwsJsonEndpoint();
  },
  open: () => {
    const client = new SecretsManagerClient({ region: 'us-east-1', endpoint: endpoint!.url, credentials: FAKE_CREDENTIALS, maxAttempts: 1 });
    clients.push(client);
    return new SecretsManagerCredentials({ client });
  },
  passwordSecret: async (name, password) => {
    endpoint!.putSecret(name, JSON.stringify({ password }));
    return { type: 'secrets-manager', secretId: name };
  },
  oauth2Secret: async (name, grant) => {
    endpoint!.putSecret(name, JSON.stringify({ oauth2: grant }));
    return { type: 'secrets-manager', secretId: name };
  },
  missingSecret: (name) => ({ type: 'secrets-manager', secretId: `${name}-missing` }),
  foreignSecret: () => ({ type: 'env', variable: 'POP_PASSWORD' }),
  teardown: async () => {
    for (const client of clients.splice(0)) client.destroy();
    await endpoint?.close();
  },
});
