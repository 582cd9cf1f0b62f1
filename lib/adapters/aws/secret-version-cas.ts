/**
 * A compare-and-swap on a Secrets Manager secret's AWSCURRENT version. `swap` writes the new
 * value as a version that is not yet current (PutSecretValue with a ClientRequestToken of our
 * own and `VersionStages: [POPDRAIN_PENDING]`), then moves AWSCURRENT to it with
 * UpdateSecretVersionStage naming the version we read as `RemoveFromVersionId`. Secrets Manager
 * refuses that move when AWSCURRENT is on another version by then, so of two writers that read
 * the same version, one wins and the other learns it lost (docs/deploy.md §13 cites the API
 * reference). A retried PutSecretValue with the same token and value is a no-op, so the SDK's
 * own retries never create a second version.
 */
import { randomUUID } from 'node:crypto';
import {
  GetSecretValueCommand,
  PutSecretValueCommand,
  UpdateSecretVersionStageCommand,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { sdkErrorName } from './sdk-error.js';

export const CURRENT_STAGE = 'AWSCURRENT';
/** The label of a version written but not (yet) made current. */
export const PENDING_STAGE = 'POPDRAIN_PENDING';

export interface SecretVersion {
  readonly versionId: string;
  readonly secretString: string;
}

export class SecretVersionCas {
  constructor(
    private readonly client: SecretsManagerClient,
    private readonly newVersionId: () => string = randomUUID,
  ) {}

  /** The current version, read now (no cache). SDK errors propagate. */
  async current(secretId: string): Promise<SecretVersion> {
    const response = await this.client.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: CURRENT_STAGE }));
    if (typeof response.VersionId !== 'string' || typeof response.SecretString !== 'string') {
      throw new Error(`secret "${secretId}" has no SecretString or VersionId`);
    }
    return { versionId: response.VersionId, secretString: response.SecretString };
  }

  /**
   * Makes `secretString` current only if `fromVersionId` still is: the new version's id, or
   * undefined when another writer moved AWSCURRENT first. SDK errors other than a lost race
   * propagate.
   */
  async swap(secretId: string, fromVersionId: string, secretString: string): Promise<string | undefined> {
    const versionId = this.newVersionId();
    await this.client.send(
      new PutSecretValueCommand({ SecretId: secretId, ClientRequestToken: versionId, SecretString: secretString, VersionStages: [PENDING_STAGE] }),
    );
    try {
      await this.client.send(
        new UpdateSecretVersionStageCommand({ SecretId: secretId, VersionStage: CURRENT_STAGE, MoveToVersionId: versionId, RemoveFromVersionId: fromVersionId }),
      );
      return versionId;
    } catch (error) {
      if (sdkErrorName(error) !== 'InvalidParameterException') throw error;
      // Refused: AWSCURRENT is elsewhere. Unless it is on ours (a retried move that had landed).
      const now = await this.current(secretId);
      return now.versionId === versionId ? versionId : undefined;
    }
  }
}
