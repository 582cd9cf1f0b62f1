/**
 * Where raw messages are stored: the bucket (new, with secure defaults, or an existing one)
 * and the KMS key they are encrypted with, when SSE-KMS is used.
 *
 * It builds in the given scope (the PopDrain), not in a construct of its own: a construct of
 * its own would add a segment to every path, and so change the logical IDs of a deployed
 * stack's retained bucket and key (CloudFormation would create new ones and orphan the old).
 */
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import type { MessageLifecycle } from './pop-drain-props.js';

export const DEFAULT_MESSAGE_PREFIX = 'messages/';

export interface MessageStorageProps {
  /**
   * An existing bucket: none is created, and the other props but `encryptionKey` and
   * `messagePrefix` do not apply.
   * @default - a new bucket: public access blocked, SSL enforced, versioned, encrypted
   */
  readonly bucket?: s3.IBucket;
  /** @default - the new bucket's key when `kms` is true, else SSE-S3 (an existing bucket's own key, if it has one) */
  readonly encryptionKey?: kms.IKey;
  /** @default false */
  readonly kms?: boolean;
  /** @default 'messages/' */
  readonly messagePrefix?: string;
  /** @default - messages are kept forever in S3 Standard */
  readonly messageLifecycle?: MessageLifecycle;
  /** @default - no server access logs */
  readonly serverAccessLogsBucket?: s3.IBucket;
  /** @default 'popdrain-access-logs/' */
  readonly serverAccessLogsPrefix?: string;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

export class MessageStorage {
  public readonly bucket: s3.IBucket;
  /** The key stored messages are encrypted with, when SSE-KMS is used. */
  public readonly encryptionKey?: kms.IKey;
  /** Stored messages live under this key prefix. */
  public readonly messagePrefix: string;

  constructor(scope: Construct, props: MessageStorageProps) {
    this.messagePrefix = props.messagePrefix ?? DEFAULT_MESSAGE_PREFIX;
    if (this.messagePrefix.startsWith('/') || /[*?]/.test(this.messagePrefix)) {
      throw new Error(`PopDrain: messagePrefix "${this.messagePrefix}" must not start with "/" or hold "*" or "?"`);
    }
    if (props.bucket !== undefined) {
      this.bucket = props.bucket;
      const key = props.encryptionKey ?? props.bucket.encryptionKey;
      if (key !== undefined) this.encryptionKey = key;
      return;
    }
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    let key = props.encryptionKey;
    if (key === undefined && props.kms === true) {
      key = new kms.Key(scope, 'MessagesKey', {
        description: 'popdrain: encrypts stored mail',
        enableKeyRotation: true,
        removalPolicy,
      });
    }
    const bucket = new s3.Bucket(scope, 'MessagesBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      ...(key === undefined
        ? { encryption: s3.BucketEncryption.S3_MANAGED }
        : { encryption: s3.BucketEncryption.KMS, encryptionKey: key, bucketKeyEnabled: true }),
      lifecycleRules: lifecycleRules(this.messagePrefix, props.messageLifecycle),
      removalPolicy,
      ...(props.serverAccessLogsBucket === undefined
        ? {}
        : {
            serverAccessLogsBucket: props.serverAccessLogsBucket,
            serverAccessLogsPrefix: props.serverAccessLogsPrefix ?? 'popdrain-access-logs/',
          }),
    });
    if (props.serverAccessLogsBucket === undefined) {
      Validations.of(bucket).acknowledge({
        id: 'AwsSolutions-S1',
        reason:
          'Server access logging is opt-in (serverAccessLogsBucket prop) because it needs a second bucket, which platforms usually run centrally. Without it: the bucket cannot be made public (public access blocked, bucket-owner-enforced ownership, SSL-only policy), only the drainer role may write, and only under the message prefix, and every object it stores is recorded in the ledger table and announced in an archived Email Stored event with its key, size and sha256. Pass serverAccessLogsBucket or enable CloudTrail S3 data events where reads must be audited too.',
      });
    }
    this.bucket = bucket;
    if (key !== undefined) this.encryptionKey = key;
  }
}

/** Incomplete uploads are always aborted; stored messages move and expire as `lifecycle` says. */
export function lifecycleRules(messagePrefix: string, lifecycle: MessageLifecycle | undefined): s3.LifecycleRule[] {
  const rules: s3.LifecycleRule[] = [{ id: 'AbortIncompleteUploads', enabled: true, abortIncompleteMultipartUploadAfter: Duration.days(7) }];
  const ia = lifecycle?.transitionToInfrequentAccessAfterDays;
  const expire = lifecycle?.expireAfterDays;
  if (ia === undefined && expire === undefined) return rules;
  if (ia !== undefined && (!Number.isInteger(ia) || ia < 30)) {
    throw new Error(`PopDrain: messageLifecycle.transitionToInfrequentAccessAfterDays must be a whole number of at least 30 (S3's minimum), not ${ia}`);
  }
  if (expire !== undefined && (!Number.isInteger(expire) || expire < 1 || (ia !== undefined && expire <= ia))) {
    throw new Error(`PopDrain: messageLifecycle.expireAfterDays must be a whole number of days after the transition, not ${expire}`);
  }
  rules.push({
    id: 'StoredMessages',
    enabled: true,
    prefix: messagePrefix,
    ...(ia === undefined ? {} : { transitions: [{ storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(ia) }] }),
    ...(expire === undefined
      ? {}
      : { expiration: Duration.days(expire), noncurrentVersionExpiration: Duration.days(lifecycle?.noncurrentVersionExpireAfterDays ?? 30) }),
  });
  return rules;
}
