/**
 * One benchmark run of the POP3 client, in its own process: connect over implicit TLS, log in,
 * UIDL + LIST, retrieve every message (pipelined when offered) into a sink that hashes and
 * discards it, QUIT. Prints one JSON line with the counts and the transfer time.
 *
 * Usage: node dist/bench/pop3-worker.js --host H --port P --user U --ca FILE [--servername N]
 *        [--window N]; the password comes from POPDRAIN_BENCH_PASSWORD.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Pop3Client } from '../lib/pop3/index.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    user: { type: 'string' },
    ca: { type: 'string' },
    servername: { type: 'string', default: 'localhost' },
    window: { type: 'string' },
  },
});

const password = process.env.POPDRAIN_BENCH_PASSWORD;
if (values.port === undefined || values.user === undefined || password === undefined) {
  process.stderr.write('usage: pop3-worker --port P --user U [--ca FILE] (password in POPDRAIN_BENCH_PASSWORD)\n');
  process.exit(2);
}

const client = await Pop3Client.connect({
  host: values.host,
  port: Number(values.port),
  tls: 'implicit',
  tlsOptions: { servername: values.servername, ...(values.ca === undefined ? {} : { ca: readFileSync(values.ca) }) },
  ...(values.window === undefined ? {} : { pipelineWindow: Number(values.window) }),
});
await client.login({ user: values.user, password });
const [uidls, sizes] = await Promise.all([client.uidl(), client.list()]);
if (uidls.length !== sizes.length) throw new Error('UIDL and LIST disagree');

const all = createHash('sha256');
let bytes = 0;
let messages = 0;
const started = process.hrtime.bigint();
for await (const message of client.retrieve(sizes)) {
  const hash = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    message.stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    message.stream.once('end', resolve);
    message.stream.once('error', reject);
  });
  all.update(hash.digest());
  messages += 1;
}
const transferSeconds = Number(process.hrtime.bigint() - started) / 1e9;
await client.quit();
process.stdout.write(
  `${JSON.stringify({ messages, bytes, transferSeconds, digest: all.digest('hex'), pipelining: client.pipelining })}\n`,
);
