import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DrainError } from '../../drain/errors.js';

/** Passes the spool file through, failing at its end if it is not exactly what was written. */
export class SpoolCheck extends Transform {
  /** Set when what was read is not what was written. */
  failure: DrainError | undefined;
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;

  constructor(
    private readonly expectedSize: number,
    private readonly expectedSha256: string,
    private readonly where: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const sha256 = this.hash.digest('hex');
    if (this.bytes === this.expectedSize && sha256 === this.expectedSha256) {
      callback();
      return;
    }
    this.failure = new DrainError(
      'STORE_FAILED',
      `the spool file of ${this.where} changed: read ${this.bytes} bytes (sha256 ${sha256}), wrote ${this.expectedSize} (sha256 ${this.expectedSha256})`,
      { phase: 'store', retryable: true },
    );
    callback(this.failure);
  }
}
