/**
 * The part of `@aws-sdk/credential-provider-node` the SDK clients use (`defaultProvider`), for
 * the Lambda bundles only: credentials from the environment, which is where the Lambda runtime
 * puts the function role's credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN) and the first link of the SDK's default chain, the one that answers in
 * Lambda. The chain's other links (SSO, shared ini files, process, web identity, ECS and EC2
 * metadata) and the STS/SSO clients they load are some 95 KiB the runtime would parse on every
 * cold start and never call. Without credentials in the environment a client fails with the
 * env provider's CredentialsProviderError instead of trying those links.
 */
import { fromEnv, type FromEnvInit } from '@aws-sdk/credential-provider-env';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@aws-sdk/types';

export const defaultProvider = (init: FromEnvInit = {}): AwsCredentialIdentityProvider => fromEnv(init);

/** As in credential-provider-node: credentials with an expiration are refreshed. */
export const credentialsWillNeedRefresh = (credentials: AwsCredentialIdentity | undefined): boolean => credentials?.expiration !== undefined;

/** As in credential-provider-node: within five minutes of their expiration, credentials count as expired. */
export const credentialsTreatedAsExpired = (credentials: AwsCredentialIdentity | undefined): boolean =>
  credentials?.expiration !== undefined && credentials.expiration.getTime() - Date.now() < 300_000;
