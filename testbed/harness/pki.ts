/**
 * The certificates a real node needs beyond the API server's self-signed one:
 * a CA that kubelet trusts for client certificates, and the client certificate
 * kube-apiserver presents to kubelet (logs, exec, port-forward). Made with
 * Debian's openssl: node:crypto makes keys but cannot issue certificates.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { systemBinary } from './prerequisites.ts';

const run = promisify(execFile);

export interface KubeletPki {
  /** CA kubelet verifies client certificates against. */
  caFile: string;
  /** kube-apiserver's client certificate and key for kubelet (group system:masters). */
  apiserverClient: { certFile: string; keyFile: string };
}

const openssl = (): string =>
  systemBinary('openssl', 'Install it with `apt-get install -y openssl` (or run `npm run setup` as root).');

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export async function makeKubeletPki(dir: string): Promise<KubeletPki> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caFile = join(dir, 'kubelet-ca.crt');
  const caKey = join(dir, 'kubelet-ca.key');
  const certFile = join(dir, 'apiserver-kubelet-client.crt');
  const keyFile = join(dir, 'apiserver-kubelet-client.key');
  const csr = join(dir, 'apiserver-kubelet-client.csr');
  const extensions = join(dir, 'client.ext');
  writeFileSync(extensions, 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  const binary = openssl();
  // Valid for a week: a test bed lives minutes, a demo a day at most.
  await run(binary, [
    'req',
    '-x509',
    ...ecKey,
    '-keyout',
    caKey,
    '-out',
    caFile,
    '-days',
    '7',
    '-subj',
    '/CN=taskapi-testbed-kubelet-ca',
  ]);
  await run(binary, [
    'req',
    ...ecKey,
    '-keyout',
    keyFile,
    '-out',
    csr,
    '-subj',
    '/O=system:masters/CN=kube-apiserver-kubelet-client',
  ]);
  await run(binary, [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    caFile,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-out',
    certFile,
    '-days',
    '7',
    '-extfile',
    extensions,
  ]);
  return { caFile, apiserverClient: { certFile, keyFile } };
}
