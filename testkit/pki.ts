// A throw-away PKI for tests: a private CA, a server certificate it signed for
// localhost / 127.0.0.1 / 127.0.0.2, and an unrelated CA for negative tests.
// Built with the `openssl` CLI (a dependency of dovecot-core), run without a shell.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const OPENSSL_TIMEOUT_MS = 10_000;
const CA_VALIDITY_DAYS = 3650;
const SERVER_VALIDITY_DAYS = 825;

export interface TestPki {
  /** PEM file of the CA that signed the server certificate. */
  caCertPath: string;
  caCertPem: string;
  serverCertPath: string;
  /** PKCS#8 EC P-256 key, mode 0600. */
  serverKeyPath: string;
  serverCertPem: string;
  serverKeyPem: string;
  /** A self-signed CA that has nothing to do with the server certificate. */
  untrustedCaCertPath: string;
  untrustedCaCertPem: string;
}

// Our own config, so the result does not depend on the system openssl.cnf.
const OPENSSL_CONFIG = `
[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = unused

[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:127.0.0.2
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args, { timeout: OPENSSL_TIMEOUT_MS });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      throw new Error(
        'openssl CLI not found; install it with `apt-get install -y openssl` ' +
          '(it comes with dovecot-core)',
        { cause: err },
      );
    }
    throw new Error(`openssl ${args[0] ?? ''} failed: ${e.stderr?.trim() || e.message}`, {
      cause: err,
    });
  }
}

function randomSerial(): string {
  // Positive 64-bit serial.
  const bytes = randomBytes(8);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return `0x${bytes.toString('hex')}`;
}

async function makeSelfSignedCa(
  configPath: string,
  keyPath: string,
  certPath: string,
  commonName: string,
): Promise<void> {
  await openssl([
    'req', '-x509', '-new',
    '-config', configPath,
    '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-keyout', keyPath,
    '-out', certPath,
    '-days', String(CA_VALIDITY_DAYS),
    '-set_serial', randomSerial(),
    '-subj', `/CN=${commonName}`,
    '-extensions', 'ca_ext',
  ]);
}

/** Creates the PKI files in `dir` (created if missing) and returns their paths and PEM text. */
export async function makeTestPki(dir: string): Promise<TestPki> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const p = (name: string): string => join(dir, name);
  const configPath = p('openssl.cnf');
  await writeFile(configPath, OPENSSL_CONFIG);

  const caKeyPath = p('ca.key');
  const caCertPath = p('ca.crt');
  const untrustedCaKeyPath = p('untrusted-ca.key');
  const untrustedCaCertPath = p('untrusted-ca.crt');
  const serverKeyPath = p('server.key');
  const serverCsrPath = p('server.csr');
  const serverCertPath = p('server.crt');

  const makeServer = async (): Promise<void> => {
    await Promise.all([
      makeSelfSignedCa(configPath, caKeyPath, caCertPath, 'popdrain test CA'),
      openssl([
        'req', '-new',
        '-config', configPath,
        '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
        '-nodes', '-keyout', serverKeyPath,
        '-out', serverCsrPath,
        '-subj', '/CN=localhost',
      ]),
    ]);
    await openssl([
      'x509', '-req',
      '-in', serverCsrPath,
      '-CA', caCertPath, '-CAkey', caKeyPath,
      '-set_serial', randomSerial(),
      '-days', String(SERVER_VALIDITY_DAYS),
      '-extfile', configPath, '-extensions', 'server_ext',
      '-out', serverCertPath,
    ]);
  };

  await Promise.all([
    makeServer(),
    makeSelfSignedCa(configPath, untrustedCaKeyPath, untrustedCaCertPath, 'popdrain untrusted CA'),
  ]);

  await Promise.all(
    [caKeyPath, untrustedCaKeyPath, serverKeyPath].map((f) => chmod(f, 0o600)),
  );

  const [caCertPem, serverCertPem, serverKeyPem, untrustedCaCertPem] = await Promise.all(
    [caCertPath, serverCertPath, serverKeyPath, untrustedCaCertPath].map((f) =>
      readFile(f, 'utf8'),
    ),
  );
  return {
    caCertPath,
    caCertPem: caCertPem!,
    serverCertPath,
    serverKeyPath,
    serverCertPem: serverCertPem!,
    serverKeyPem: serverKeyPem!,
    untrustedCaCertPath,
    untrustedCaCertPem: untrustedCaCertPem!,
  };
}
