/**
 * One message being written to S3: the engine streams into the spool, `commit()` checks the
 * summary against the spooled bytes and uploads them with a conditional write (`If-None-Match:
 * *`); a lost condition is decided by HeadObject (same sha256: `existed`; else STORE_CONFLICT).
 */
import { Upload, type Options as UploadOptions } from '@aws-sdk/lib-storage';
import type { Writable } from 'node:stream';
import { DrainError } from '../../drain/errors.js';
import type { MessageSummary, MessageWriter, StoredObject, StoreRef } from '../../drain/ports.js';
import { isConditionFailure, s3Failure, storeBug } from './s3-errors.js';
import { resolveExistingObject, s3Ref } from './s3-existing-object.js';
import { MESSAGE_CONTENT_TYPE, userMetadata } from './s3-metadata.js';
import type { Spool } from './s3-spool.js';
import type { S3MessageStore } from './s3-store.js';

type WriterState = 'open' | 'committing' | 'done';

export class S3MessageWriter implements MessageWriter {
  readonly stream: Writable;
  private state: WriterState = 'open';
  private upload: Upload | undefined;

  constructor(
    private readonly store: S3MessageStore,
    private readonly objectKey: string,
    private readonly mailboxId: string,
    private readonly spool: Spool,
  ) {
    this.stream = spool;
  }

  private get where(): string {
    return `s3://${this.store.bucket}/${this.objectKey}`;
  }

  private ref(versionId: string | undefined): StoreRef {
    return s3Ref(this.store.bucket, this.objectKey, versionId);
  }

  async commit(summary: MessageSummary): Promise<StoredObject> {
    if (this.state !== 'open') {
      throw storeBug(`commit of ${this.where}: the writer was already ${this.state === 'done' ? 'committed or aborted' : 'committing'}`);
    }
    this.state = 'committing';
    try {
      this.checkSummary(summary);
      const metadata = userMetadata(summary, this.where);
      try {
        const versionId = await this.uploadSpool(summary, metadata);
        return { ref: this.ref(versionId), existed: false };
      } catch (error) {
        if (error instanceof DrainError) throw error;
        if (isConditionFailure(error)) {
          const target = { client: this.store.client, bucket: this.store.bucket, objectKey: this.objectKey, mailboxId: this.mailboxId, logger: this.store.log() };
          return await resolveExistingObject(target, summary.sha256, error);
        }
        throw s3Failure(`upload to ${this.where}`, error, this.store.bucket);
      }
    } finally {
      this.state = 'done';
      this.upload = undefined;
      await this.spool.discard();
    }
  }

  async abort(): Promise<void> {
    this.state = 'done';
    try {
      await this.upload?.abort();
    } catch {
      // lib-storage's abort only signals; nothing to report.
    }
    try {
      await this.spool.discard();
    } catch (error) {
      this.store.log().warn('could not remove a spool file', { mailboxId: this.mailboxId, key: this.objectKey, error: String(error) });
    }
  }

  private checkSummary(summary: MessageSummary): void {
    if (!this.spool.writableFinished || this.spool.errored !== null) {
      throw storeBug(`commit of ${this.where} before its stream finished (or after it failed)`);
    }
    const written = this.spool.result();
    if (summary.size !== written.size || summary.sha256.toLowerCase() !== written.sha256) {
      throw storeBug(
        `commit of ${this.where}: the summary (${summary.size} bytes, sha256 ${summary.sha256}) ` +
          `does not match the bytes written (${written.size} bytes, sha256 ${written.sha256})`,
      );
    }
  }

  /** Uploads the spool; resolves the new object's VersionId (when the bucket is versioned). */
  private async uploadSpool(summary: MessageSummary, metadata: Record<string, string>): Promise<string | undefined> {
    const { size } = summary;
    const sha256 = summary.sha256.toLowerCase();
    const partSize = this.store.partSizeFor(size);
    const singlePut = size <= partSize;
    const { body, failure } = this.spool.reader(sha256, this.where);
    const params: UploadOptions['params'] = {
      Bucket: this.store.bucket,
      Key: this.objectKey,
      Body: body,
      ContentLength: size,
      ContentType: MESSAGE_CONTENT_TYPE,
      Metadata: metadata,
      IfNoneMatch: '*',
      // Sent with CompleteMultipartUpload only: S3 rejects a completion of any other size.
      MpuObjectSize: size,
    };
    // Full-object SHA-256 checksums exist for single uploads only (multipart ones are per part).
    if (singlePut) params.ChecksumSHA256 = Buffer.from(sha256, 'hex').toString('base64');
    if (this.store.kmsKeyId !== undefined) {
      params.ServerSideEncryption = 'aws:kms';
      params.SSEKMSKeyId = this.store.kmsKeyId;
    }
    const run = async (): Promise<string | undefined> => {
      if (this.state !== 'committing') throw storeBug(`upload to ${this.where} aborted`);
      const upload = new Upload({ client: this.store.client, params, partSize, queueSize: this.store.queueSize, leavePartsOnError: false });
      this.upload = upload;
      return (await upload.done()).VersionId;
    };
    try {
      return singlePut ? await run() : await this.store.withMultipartSlot(run);
    } catch (error) {
      // lib-storage reports a failed AbortMultipartUpload instead of what made it abort.
      throw failure() ?? error;
    } finally {
      if (!(body instanceof Uint8Array)) body.destroy();
    }
  }
}
