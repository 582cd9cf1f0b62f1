/** Every limit and timeout of the scriptable POP3 server, in one place. */

/** Longest command or SASL response line accepted; XOAUTH2 tokens of a few KiB fit easily. */
export const MAX_COMMAND_LINE_BYTES = 64 * 1024;
/** Message bodies are written in chunks of this size, each awaited (backpressure). */
export const BODY_WRITE_CHUNK_BYTES = 64 * 1024;
/** Limit for the TLS handshake after STLS. */
export const STLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** After the server closed its side, how long it waits for the client's FIN before a reset. */
export const CLOSE_LINGER_MS = 2_000;
