/**
 * Moves one message's bytes from the POP3 body stream into the store's stream, hashing and
 * counting them as they pass and feeding a side stream (the metadata extractor) the same
 * chunks. Backpressure from either sink pauses the source; a side stream that fails is dropped
 * and never holds the message back.
 *
 * This is what `pipeline(source, hashingTransform, sink)` did, without the Transform and
 * pipeline's per-call machinery (an AbortController and its DOMException, end-of-stream
 * watchers on three streams): for a mailbox of small messages that machinery cost more CPU
 * than the bytes themselves.
 */
import { createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';

export interface PumpResult {
  /** Hex sha256 of exactly the bytes passed to the sink. */
  sha256: string;
  size: number;
}

/** The source sent more than the pump's byte cap: nothing more is written; `seen` bytes arrived. */
export class OverCapError extends Error {
  constructor(
    readonly seen: number,
    readonly cap: number,
  ) {
    super(`the message ran past ${cap} bytes (${seen} received)`);
  }
}

function prematureClose(which: string): Error {
  const error = new Error(`the ${which} closed before the message ended`) as NodeJS.ErrnoException;
  error.code = 'ERR_STREAM_PREMATURE_CLOSE';
  return error;
}

/**
 * Resolves once the source ended and the sink finished (all bytes handed to it were
 * processed). Rejects with OverCapError as soon as more than `maxBytes` arrived, or the first error of the source or the sink (or a premature close),
 * after destroying both; the caller decides what the error means.
 */
export function pumpMessage(source: Readable, sink: Writable, side: Writable, maxBytes = Infinity): Promise<PumpResult> {
  return new Promise<PumpResult>((resolve, reject) => {
    const hash = createHash('sha256');
    let size = 0;
    let sideUsable = true;
    let sinkFull = false;
    let sideFull = false;
    let ended = false;
    let settled = false;

    const resumeIfFree = (): void => {
      if (!sinkFull && !sideFull && !ended && !settled) source.resume();
    };
    const onData = (chunk: Buffer): void => {
      // Counted as the bytes arrive: a server that lied in LIST is cut off at the cap.
      if (size + chunk.length > maxBytes) {
        fail(new OverCapError(size + chunk.length, maxBytes));
        return;
      }
      hash.update(chunk);
      size += chunk.length;
      if (sideUsable && !side.write(chunk)) sideFull = true;
      if (!sink.write(chunk)) sinkFull = true;
      if (sinkFull || sideFull) source.pause();
    };
    const onSinkDrain = (): void => {
      sinkFull = false;
      resumeIfFree();
    };
    const onSideDrain = (): void => {
      sideFull = false;
      resumeIfFree();
    };
    const onSideError = (): void => {
      sideUsable = false;
      onSideDrain();
    };
    const onEnd = (): void => {
      ended = true;
      sink.end();
    };
    const onSourceClose = (): void => {
      if (!ended) fail(prematureClose('message stream'));
    };
    const onFinish = (): void => {
      if (settled) return;
      settled = true;
      detach();
      resolve({ sha256: hash.digest('hex'), size });
    };
    const onSinkClose = (): void => {
      if (!sink.writableFinished) fail(prematureClose('store stream'));
    };
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      detach();
      // Keep an error listener: destroying may emit more errors, which must not go unhandled.
      source.on('error', ignore);
      sink.on('error', ignore);
      if (!source.destroyed) source.destroy();
      if (!sink.destroyed) sink.destroy();
      reject(error);
    };
    const detach = (): void => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', fail);
      source.off('close', onSourceClose);
      sink.off('drain', onSinkDrain);
      sink.off('finish', onFinish);
      sink.off('error', fail);
      sink.off('close', onSinkClose);
      side.off('drain', onSideDrain);
      side.off('error', onSideError);
    };

    side.on('drain', onSideDrain);
    side.on('error', onSideError);
    sink.on('drain', onSinkDrain);
    sink.on('finish', onFinish);
    sink.on('error', fail);
    sink.on('close', onSinkClose);
    source.on('end', onEnd);
    source.on('error', fail);
    source.on('close', onSourceClose);
    if (source.errored !== null && source.errored !== undefined) {
      fail(source.errored);
      return;
    }
    if (source.destroyed && !source.readableEnded) {
      fail(prematureClose('message stream'));
      return;
    }
    source.on('data', onData);
  });
}

const ignore = (): void => {};
