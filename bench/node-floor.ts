/**
 * The `node-floor` row: what Node.js itself allows for receiving a mailbox, in its own process.
 * A minimal pipelined POP3 reader on plain `node:tls`, independent of lib/: greeting, USER/PASS,
 * UIDL and LIST (pipelined), then RETR for every message with at most `--window` commands in
 * flight (default 512, as popdrain's client), each body dot-unstuffed and hashed with sha256 as
 * it arrives (in runs between CRLF-dot sequences, not line by line), nothing stored, QUIT. No timeouts, no limits, no error recovery: a floor, not a
 * client. Prints one JSON line like bench/pop3-worker.ts.
 *
 * Usage: node dist/bench/node-floor.js --host H --port P --user U --ca FILE [--servername N]
 *        [--window N]; the password comes from POPDRAIN_BENCH_PASSWORD.
 */
import { createHash, type Hash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    user: { type: 'string' },
    ca: { type: 'string' },
    servername: { type: 'string', default: 'localhost' },
    window: { type: 'string', default: '512' },
  },
});
const password = process.env.POPDRAIN_BENCH_PASSWORD;
if (values.port === undefined || values.user === undefined || password === undefined) {
  process.stderr.write('usage: node-floor --port P --user U [--ca FILE] (password in POPDRAIN_BENCH_PASSWORD)\n');
  process.exit(2);
}
const WINDOW = Math.max(1, Number(values.window));

/** Where a multi-line body goes: a hash for RETR, a text collector for UIDL/LIST. */
interface Sink {
  update(b: Buffer): void;
  end(): void;
}
interface Pending {
  multi: boolean;
  sink?: Sink;
  onStatus(line: string): void;
}

const queue: Pending[] = [];
let inBody = false;
let atLineStart = true;
let carry: Buffer | undefined;
let outgoing: string[] = [];

const socket = connect({
  host: values.host,
  port: Number(values.port),
  servername: values.servername,
  ...(values.ca === undefined ? {} : { ca: readFileSync(values.ca) }),
});
socket.setNoDelay(true);
socket.on('error', (error) => {
  process.stderr.write(`node-floor: ${error.message}\n`);
  process.exit(1);
});

function send(command: string, pending: Pending): void {
  outgoing.push(`${command}\r\n`);
  queue.push(pending);
}
function flush(): void {
  if (outgoing.length === 0) return;
  socket.write(outgoing.join(''));
  outgoing = [];
}

const CRLF_DOT = Buffer.from('\r\n.');

/**
 * Body bytes from `pos`: hand on every run of bytes up to the next CRLF followed by a dot (the
 * only place unstuffing or the terminator can be), drop a stuffed dot, stop at the terminator.
 * Returns the next offset, or -(offset + 1) when the bytes left cannot be told yet.
 */
function body(chunk: Buffer, pos: number, sink: Sink): number {
  while (pos < chunk.length) {
    if (atLineStart && chunk[pos] === 0x2e) {
      if (pos + 2 >= chunk.length) return -pos - 1; // need the next bytes to tell a terminator
      if (chunk[pos + 1] === 0x0d && chunk[pos + 2] === 0x0a) {
        sink.end();
        inBody = false;
        return pos + 3;
      }
      pos += 1; // a stuffed dot
    }
    const hit = chunk.indexOf(CRLF_DOT, pos);
    if (hit === -1) {
      // Keep a final CR or CRLF back: the dot may come in the next chunk.
      const end = chunk[chunk.length - 1] === 0x0d ? chunk.length - 1 : chunk[chunk.length - 1] === 0x0a && chunk[chunk.length - 2] === 0x0d ? chunk.length - 2 : chunk.length;
      if (end > pos) sink.update(pos === 0 && end === chunk.length ? chunk : chunk.subarray(pos, end));
      atLineStart = false;
      return end === chunk.length ? end : -end - 1;
    }
    sink.update(chunk.subarray(pos, hit + 2));
    atLineStart = true;
    pos = hit + 2;
  }
  return pos;
}

socket.on('data', (data: Buffer) => {
  const chunk = carry === undefined ? data : Buffer.concat([carry, data]);
  carry = undefined;
  let pos = 0;
  while (pos < chunk.length) {
    const current = queue[0];
    if (current === undefined) throw new Error(`unexpected bytes from the server: ${chunk.toString('latin1', pos, pos + 40)}`);
    if (inBody) {
      const next = body(chunk, pos, current.sink!);
      if (next < 0) {
        carry = chunk.subarray(-next - 1);
        break;
      }
      pos = next;
      if (!inBody) queue.shift();
      continue;
    }
    const eol = chunk.indexOf('\r\n', pos);
    if (eol === -1) {
      carry = chunk.subarray(pos);
      break;
    }
    const line = chunk.toString('latin1', pos, eol);
    pos = eol + 2;
    if (!line.startsWith('+OK')) throw new Error(`the server said: ${line}`);
    current.onStatus(line);
    if (current.multi) {
      inBody = true;
      atLineStart = true;
    } else {
      queue.shift();
    }
  }
  flush();
});

function textSink(done: (text: string) => void): Sink {
  const parts: Buffer[] = [];
  return { update: (b) => parts.push(b), end: () => done(Buffer.concat(parts).toString('latin1')) };
}

const all = createHash('sha256');
let bytes = 0;
let messages = 0;
let started = 0n;
let sizes: number[] = [];
let uidlCount = 0;
let nextRetr = 1;

function retr(n: number): void {
  let hash: Hash;
  send(`RETR ${n}`, {
    multi: true,
    onStatus: () => {
      hash = createHash('sha256');
    },
    sink: {
      update: (b) => {
        bytes += b.length;
        hash.update(b);
      },
      end: () => {
        all.update(hash.digest());
        messages += 1;
        if (nextRetr <= sizes.length) retr(nextRetr++);
        else if (messages === sizes.length) finish();
      },
    },
  });
}

function finish(): void {
  const transferSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  send('QUIT', {
    multi: false,
    onStatus: () => {
      socket.end();
      process.stdout.write(`${JSON.stringify({ messages, bytes, transferSeconds, digest: all.digest('hex'), uidls: uidlCount })}\n`);
    },
  });
}

queue.push({
  multi: false,
  onStatus: () => {
    send(`USER ${values.user}`, { multi: false, onStatus: () => undefined });
    send(`PASS ${password}`, { multi: false, onStatus: () => undefined });
    send('UIDL', { multi: true, onStatus: () => undefined, sink: textSink((t) => (uidlCount = t.split('\r\n').length - 1)) });
    send('LIST', {
      multi: true,
      onStatus: () => undefined,
      sink: textSink((t) => {
        sizes = t.split('\r\n').filter((l) => l !== '').map((l) => Number(l.split(' ')[1]));
        if (uidlCount !== sizes.length) throw new Error('UIDL and LIST disagree');
        started = process.hrtime.bigint();
        if (sizes.length === 0) finish();
        while (nextRetr <= sizes.length && nextRetr <= WINDOW) retr(nextRetr++);
      }),
    });
  },
});
