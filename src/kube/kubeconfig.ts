/**
 * Where the API server is and how to authenticate, found the way kubectl and
 * client-go find it: $KUBECONFIG, else ~/.kube/config, else the Pod's service
 * account (in-cluster). Supports what clusters hand operators: bearer tokens
 * (inline or a file, re-read so rotated tokens are picked up), client
 * certificates, a CA bundle or insecure-skip-tls-verify.
 *
 * A kubeconfig written as JSON (valid YAML too) is read without loading a YAML
 * parser; only a YAML one pulls in the `yaml` package.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';

export interface Connection {
  /** Base URL of the API server, without a trailing slash. */
  server: string;
  ca?: Buffer;
  insecureSkipTlsVerify: boolean;
  clientCertificate?: Buffer;
  clientKey?: Buffer;
  /** The bearer token to send now (undefined: none). */
  token: () => string | undefined;
  /** Namespace of the current context or of the Pod; where namespaced defaults go. */
  namespace: string | undefined;
  /** Where the settings came from, for logs. */
  source: string;
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Bound service account tokens rotate; client-go re-reads the file every minute too. */
const TOKEN_REREAD_MS = 60_000;

/** Thrown when no usable configuration is found; says where it looked and what was wrong. */
export class KubeconfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubeconfigError';
  }
}

function tokenFromFile(path: string): () => string {
  let token = '';
  let readAt = -Infinity;
  return () => {
    if (performance.now() - readAt > TOKEN_REREAD_MS) {
      token = readFileSync(path, 'utf8').trim();
      readAt = performance.now();
    }
    return token;
  };
}

interface NamedEntry<T> {
  name: string;
  [key: string]: unknown;
  cluster?: T;
  user?: T;
  context?: T;
}

interface KubeconfigFile {
  'current-context'?: string;
  clusters?: NamedEntry<Record<string, string | boolean | undefined>>[];
  users?: NamedEntry<Record<string, unknown>>[];
  contexts?: NamedEntry<{ cluster?: string; user?: string; namespace?: string }>[];
}

async function parseKubeconfig(text: string): Promise<KubeconfigFile> {
  try {
    return JSON.parse(text) as KubeconfigFile;
  } catch {
    const { parse } = await import('yaml');
    return parse(text) as KubeconfigFile;
  }
}

/** Inline base64 data wins over a file path, as in kubectl; paths are relative to the kubeconfig. */
function material(entry: Record<string, unknown>, field: string, base: string): Buffer | undefined {
  const data = entry[`${field}-data`];
  if (typeof data === 'string') return Buffer.from(data, 'base64');
  const path = entry[field];
  if (typeof path === 'string') return readFileSync(isAbsolute(path) ? path : join(base, path));
  return undefined;
}

async function fromKubeconfig(path: string): Promise<Connection> {
  const file = await parseKubeconfig(readFileSync(path, 'utf8'));
  const base = dirname(path);
  const contextName = file['current-context'];
  const context = file.contexts?.find((entry) => entry.name === contextName)?.context;
  if (!context) throw new KubeconfigError(`kubeconfig ${path}: current-context "${contextName ?? ''}" not found`);
  const cluster = file.clusters?.find((entry) => entry.name === context.cluster)?.cluster;
  if (!cluster || typeof cluster['server'] !== 'string') {
    throw new KubeconfigError(`kubeconfig ${path}: cluster "${context.cluster ?? ''}" has no server`);
  }
  const user = file.users?.find((entry) => entry.name === context.user)?.user ?? {};
  for (const unsupported of ['exec', 'auth-provider', 'username']) {
    if (unsupported in user) {
      throw new KubeconfigError(
        `kubeconfig ${path}: user "${context.user ?? ''}" authenticates with "${unsupported}", which the operator does not support; use a token or client certificate`,
      );
    }
  }
  const token = user['token'];
  const tokenFile = user['tokenFile'];
  return {
    server: cluster['server'].replace(/\/+$/, ''),
    ca: material(cluster, 'certificate-authority', base),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    clientCertificate: material(user, 'client-certificate', base),
    clientKey: material(user, 'client-key', base),
    token:
      typeof token === 'string'
        ? () => token
        : typeof tokenFile === 'string'
          ? tokenFromFile(tokenFile)
          : () => undefined,
    namespace: context.namespace,
    source: path,
  };
}

function inCluster(env: NodeJS.ProcessEnv): Connection {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  if (!host) {
    throw new KubeconfigError(
      'no kubeconfig: set KUBECONFIG, create ~/.kube/config, or run in a Pod (KUBERNETES_SERVICE_HOST is unset)',
    );
  }
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(join(SERVICE_ACCOUNT_DIR, 'ca.crt')),
    insecureSkipTlsVerify: false,
    token: tokenFromFile(join(SERVICE_ACCOUNT_DIR, 'token')),
    namespace: readFileSync(join(SERVICE_ACCOUNT_DIR, 'namespace'), 'utf8').trim(),
    source: 'in-cluster service account',
  };
}

/** The connection kubectl would use from this environment (first file of $KUBECONFIG). */
export async function loadConnection(env: NodeJS.ProcessEnv = process.env): Promise<Connection> {
  const fromEnv = env['KUBECONFIG']?.split(':').find((path) => path !== '');
  if (fromEnv) return fromKubeconfig(fromEnv);
  const home = join(homedir(), '.kube', 'config');
  if (existsSync(home)) return fromKubeconfig(home);
  return inCluster(env);
}
