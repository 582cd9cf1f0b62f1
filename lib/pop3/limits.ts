/**
 * Every timeout and every limit against a hostile or broken server, in one place, with the one
 * error factory that reports a limit being exceeded.
 */
import { Pop3Error, type Pop3Phase } from './errors.js';

/** TCP connect plus, for implicit TLS, the TLS handshake. */
export const CONNECT_TIMEOUT_MS = 15_000;
/** From connected to the end of the greeting line. */
export const GREETING_TIMEOUT_MS = 15_000;
/**
 * From sending a command (or from the previous response completing, when pipelined) to the end
 * of its status line: bytes trickling in do not extend it.
 */
export const COMMAND_TIMEOUT_MS = 30_000;
/**
 * Authentication may be slowed down on purpose by servers after failures. For each of USER,
 * PASS and APOP as for a command; for AUTH, the whole SASL exchange from sending AUTH to the
 * final status line, however many challenges the server sends.
 */
export const AUTH_TIMEOUT_MS = 45_000;
/** Longest silence in the middle of a multi-line response (message bodies, listings). */
export const BODY_IDLE_TIMEOUT_MS = 60_000;
/** The STLS upgrade handshake. */
export const TLS_UPGRADE_TIMEOUT_MS = 15_000;
/** How long QUIT may take before the socket is closed anyway (deletions are then rolled back). */
export const QUIT_TIMEOUT_MS = 15_000;
/**
 * The whole of a LIST or UIDL response, from sending it (or the previous response completing)
 * to its last line, however steadily the lines trickle in: a listing of a million messages is
 * about 30 MB. CAPA is bounded as a whole by COMMAND_TIMEOUT_MS.
 */
export const LISTING_TIMEOUT_MS = 300_000;
/**
 * The slowest transfer a RETR or TOP of known (listed) size may keep up as a whole: its
 * response must complete within COMMAND_TIMEOUT_MS plus its size at this rate, however steadily
 * its bytes trickle in (26 MB: 27 minutes).
 */
export const MIN_BODY_BYTES_PER_SECOND = 16 * 1024;

/**
 * RFC 1939 limits status lines to 512 octets including CRLF; RFC 2449 relaxes that for SASL.
 * Real servers stay far below this. A longer line is an attack or a broken server.
 */
export const MAX_STATUS_LINE_BYTES = 8_192;
/** Longest SASL challenge line (`+ base64`), e.g. an XOAUTH2 error JSON. */
export const MAX_CHALLENGE_LINE_BYTES = 16_384;
/**
 * Most `+ ` challenges one AUTH exchange may bring (the longest real exchange, SCRAM, has two,
 * plus an error challenge at most). More is a server keeping the exchange going forever.
 */
export const MAX_SASL_CHALLENGES = 8;
/** Longest single line inside a listing (CAPA, LIST, UIDL), counted like a status line: CR in, LF out. */
export const MAX_LISTING_LINE_BYTES = 8_192;
/** Total size of one collected listing (a UIDL of a million messages is ~30 MB). */
export const MAX_LISTING_BYTES = 128 * 1024 * 1024;
/** RFC 1939: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E. We accept up to 512. */
export const MAX_UIDL_BYTES = 512;

/**
 * Commands in flight when the server advertises PIPELINING. Refilled when half are answered,
 * so 256 to 512 are outstanding: at 10 ms round trip a refill of 256 RETRs of 4 KB (1 MB) keeps
 * up with what this server sends (~50 MB/s). Measured through the bench's 5 ms-each-way proxy,
 * 2,000 x 4 KB: window 64 took 0.50-0.55 s to transfer, 256 took 0.20-0.38 s, 512 0.17-0.28 s,
 * 1024 no better (a noisy machine: the ranges overlap, the medians do not). Bytes in flight
 * are capped separately (`RetrieveOptions.maxBytesAhead`).
 */
export const DEFAULT_PIPELINE_WINDOW = 512;
/**
 * A message received whole (`RetrieveOptions.collectUpTo`) may run this far past the size its
 * listing gave (a server may count line ends differently) before it is streamed instead.
 */
export const COLLECT_SLACK_BYTES = 4 * 1024;
/** Bytes a message stream buffers before the socket is paused (backpressure). */
export const BODY_HIGH_WATER_MARK_BYTES = 256 * 1024;
/**
 * Bytes of messages received whole (`RetrieveOptions.collectUpTo`) that the client may hold
 * for a consumer that has not taken them yet: past this the socket is paused (the server's
 * answers wait in the kernel's buffers and on the wire, not in the heap), and it resumes once
 * the consumer has taken them down to half. The commands stay in flight either way, so a long
 * link still streams.
 */
export const RECEIVED_AHEAD_MAX_BYTES = 512 * 1024;

export function limitExceeded(what: string, limit: number, phase: Pop3Phase, command?: string): Pop3Error {
  return new Pop3Error('LIMIT_EXCEEDED', `server sent ${what} longer than ${limit} bytes`, { phase, command });
}

/**
 * A collected listing (CAPA, LIST, UIDL) ran past MAX_LISTING_BYTES: an endless or absurd
 * listing, not a long line.
 */
export function listingTooLarge(command: string, limit: number, phase: Pop3Phase): Pop3Error {
  return new Pop3Error('LIMIT_EXCEEDED', `server sent a ${command} listing larger than ${limit} bytes (the bound on a whole listing): an endless or oversized listing`, {
    phase,
    command,
  });
}
