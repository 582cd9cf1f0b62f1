/**
 * The Lambda bundles replace the SDK's default credential chain with its first link, the
 * environment (lambdas/bundle-shims/credential-provider-node.ts). A real DynamoDB client,
 * bundled with the Lambda aliases, signs its requests with the environment's credentials (a
 * loopback endpoint records them), and the chain's other links are not in the bundle.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAMBDA_BUNDLE, lambdaBundleAliases } from '../../infra/constructs/lambda-bundle.js';
import { credentialsTreatedAsExpired, defaultProvider } from '../../lambdas/bundle-shims/credential-provider-node.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const ENV_KEYS = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_CREDENTIAL_EXPIRATION', 'AWS_PROFILE'] as const;

let saved: Record<string, string | undefined>;
const setEnv = (values: Partial<Record<(typeof ENV_KEYS)[number], string>>) => {
  for (const key of ENV_KEYS) {
    if (values[key] === undefined) delete process.env[key];
    else process.env[key] = values[key];
  }
};

beforeAll(() => {
  saved = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
});
afterAll(() => {
  for (const key of ENV_KEYS) {
    if (saved[key] === undefined) delete process.env[key];
    else process.env[key] = saved[key];
  }
});

describe('the credential-provider-node shim', () => {
  it('answers with the environment credentials, session token and expiration included', async () => {
    setEnv({ AWS_ACCESS_KEY_ID: 'AKIDSHIMTEST', AWS_SECRET_ACCESS_KEY: 'shim-secret', AWS_SESSION_TOKEN: 'shim-token', AWS_CREDENTIAL_EXPIRATION: '2030-01-01T00:00:00Z' });
    const credentials = await defaultProvider()();
    expect(credentials).toMatchObject({ accessKeyId: 'AKIDSHIMTEST', secretAccessKey: 'shim-secret', sessionToken: 'shim-token' });
    expect(credentials.expiration?.toISOString()).toBe('2030-01-01T00:00:00.000Z');
  });

  it('fails without environment credentials instead of trying other sources', async () => {
    setEnv({ AWS_PROFILE: 'some-profile' });
    await expect(defaultProvider()()).rejects.toThrow(/environment variable credentials/i);
  });

  it('treats credentials as expired within five minutes of their expiration, as the SDK does', () => {
    expect(credentialsTreatedAsExpired({ accessKeyId: 'a', secretAccessKey: 'b' })).toBe(false);
    expect(credentialsTreatedAsExpired({ accessKeyId: 'a', secretAccessKey: 'b', expiration: new Date(Date.now() + 60_000) })).toBe(true);
    expect(credentialsTreatedAsExpired({ accessKeyId: 'a', secretAccessKey: 'b', expiration: new Date(Date.now() + 600_000) })).toBe(false);
  });
});

describe('an SDK client as the Lambda bundle builds it', () => {
  let dir: string;
  let server: Server;
  let endpoint: string;
  let inputs: string[];
  let listTables: (endpoint: string) => Promise<unknown>;
  const seen: IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
        res.end('{"TableNames":[]}');
      });
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dir = mkdtempSync(join(tmpdir(), 'popdrain-cred-shim-'));
    const outfile = join(dir, 'client.mjs');
    const result = await build({
      stdin: {
        contents: `import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
          export const listTables = (endpoint) => new DynamoDBClient({ region: 'us-east-1', endpoint, maxAttempts: 1 }).send(new ListTablesCommand({}));`,
        resolveDir: ROOT,
        loader: 'js',
      },
      outfile,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: LAMBDA_BUNDLE.format,
      mainFields: [...LAMBDA_BUNDLE.mainFields],
      banner: { js: LAMBDA_BUNDLE.banner },
      alias: lambdaBundleAliases(ROOT),
      metafile: true,
      logLevel: 'error',
    });
    inputs = Object.keys(result.metafile.inputs);
    ({ listTables } = (await import(pathToFileURL(outfile).href)) as { listTables: typeof listTables });
  }, 60_000);

  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await new Promise((done) => server.close(done));
  });

  it('holds the shim and none of the chain links it replaces', () => {
    expect(inputs.filter((f) => f.endsWith('lambdas/bundle-shims/credential-provider-node.ts'))).toHaveLength(1);
    expect(inputs.filter((f) => /node_modules\/@aws-sdk\/(credential-provider-(node|ini|sso|process|web-identity|http|login)|nested-clients|token-providers)\//.test(f))).toEqual([]);
    expect(inputs.filter((f) => /node_modules\/@smithy\/credential-provider-imds\//.test(f))).toEqual([]);
  });

  it('signs its requests with the environment credentials', async () => {
    setEnv({ AWS_ACCESS_KEY_ID: 'AKIDBUNDLEDSHIM', AWS_SECRET_ACCESS_KEY: 'bundled-secret', AWS_SESSION_TOKEN: 'bundled-token' });
    await listTables(endpoint);
    const headers = seen.at(-1)!;
    expect(headers.authorization).toMatch(/Credential=AKIDBUNDLEDSHIM\//);
    expect(headers['x-amz-security-token']).toBe('bundled-token');
  });
});
