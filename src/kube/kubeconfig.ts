/**
 * Where the API server is and how to authenticate, found the way kubectl and
 * client-go find it: every file of $KUBECONFIG merged by kubectl's rules (the
 * first file to set a value wins; paths are relative to the file that names
 * them), else ~/.kube/config, else the Pod's service account (in-cluster).
 * Supports what clusters hand people and operators: bearer tokens (inline or a
 * file, re-read so rotated tokens are picked up), client certificates, exec
 * credential plugins (EKS, GKE, AKS), a CA bundle, `tls-server-name` and
 * insecure-skip-tls-verify. What it cannot do (proxy-url, the removed
 * auth-provider and basic-auth users) is refused with the field named.
 *
 * Exec plugins run through @kubernetes/client-node's ExecAuth, imported only
 * when a kubeconfig has one (client-node whole costs ~80 MiB of memory; this
 * one module loads node:child_process alone). Its token is cached until it
 * expires. A kubeconfig written as JSON (valid YAML too) is read without
 * loading a YAML parser; only a YAML one pulls in the `yaml` package.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import type { RequestOptions } from 'node:https';
import type { ExecAuth } from '@kubernetes/client-node/dist/exec_auth.js';

export interface Connection {
  /** Base URL of the API server, without a trailing slash. */
  server: string;
  ca?: Buffer;
  insecureSkipTlsVerify: boolean;
  /** The name the server's certificate is checked against, when not the server's host. */
  tlsServerName?: string;
  clientCertificate?: Buffer;
  clientKey?: Buffer;
  /** The bearer token to send now (undefined: none); an exec plugin's may need a run first. */
  token: () => string | undefined | Promise<string | undefined>;
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
  clusters?: NamedEntry<Record<string, unknown>>[];
  users?: NamedEntry<Record<string, unknown>>[];
  contexts?: NamedEntry<{ cluster?: string; user?: string; namespace?: string }>[];
}

/** A kubeconfig entry with the directory of the file that defined it, which its relative paths start from. */
interface Located<T> {
  value: T;
  base: string;
  file: string;
}

/** Several kubeconfig files as one, by kubectl's rules: the first file that names an entry or sets a value wins. */
interface MergedKubeconfig {
  currentContext: string | undefined;
  clusters: Map<string, Located<Record<string, unknown>>>;
  users: Map<string, Located<Record<string, unknown>>>;
  contexts: Map<string, Located<{ cluster?: string; user?: string; namespace?: string }>>;
  files: string[];
}

async function parseKubeconfig(text: string): Promise<KubeconfigFile> {
  try {
    return JSON.parse(text) as KubeconfigFile;
  } catch {
    const { parse } = await import('yaml');
    return (parse(text) ?? {}) as KubeconfigFile;
  }
}

async function mergeKubeconfigs(paths: string[]): Promise<MergedKubeconfig> {
  const merged: MergedKubeconfig = {
    currentContext: undefined,
    clusters: new Map(),
    users: new Map(),
    contexts: new Map(),
    files: [],
  };
  for (const path of paths) {
    // kubectl skips a listed file that does not exist.
    if (!existsSync(path)) continue;
    merged.files.push(path);
    const file = await parseKubeconfig(readFileSync(path, 'utf8'));
    const base = dirname(path);
    merged.currentContext ||= file['current-context'] || undefined;
    const add = <T>(
      into: Map<string, Located<T>>,
      entries: NamedEntry<T>[] | undefined,
      field: 'cluster' | 'user' | 'context',
    ) => {
      for (const entry of entries ?? []) {
        const value = entry[field];
        if (!into.has(entry.name) && value) into.set(entry.name, { value, base, file: path });
      }
    };
    add(merged.clusters, file.clusters, 'cluster');
    add(merged.users, file.users, 'user');
    add(merged.contexts, file.contexts, 'context');
  }
  return merged;
}

const resolvePath = (path: string, base: string): string => (isAbsolute(path) ? path : join(base, path));

/** Inline base64 data wins over a file path, as in kubectl; paths are relative to the kubeconfig. */
function material(entry: Record<string, unknown>, field: string, base: string): Buffer | undefined {
  const data = entry[`${field}-data`];
  if (typeof data === 'string') return Buffer.from(data, 'base64');
  const path = entry[field];
  if (typeof path === 'string') return readFileSync(resolvePath(path, base));
  return undefined;
}

interface ExecConfig {
  command: string;
  args?: string[];
  env?: { name: string; value: string }[];
  apiVersion?: string;
}

/** A token from an exec credential plugin, run by client-node's ExecAuth (which caches it until it expires). */
function execToken(userName: string, exec: ExecConfig, base: string): () => Promise<string | undefined> {
  // kubectl runs a command given as a relative path from the kubeconfig's directory.
  const command = exec.command.includes('/') ? resolvePath(exec.command, base) : exec.command;
  const user = { name: userName, exec: { ...exec, command } };
  let auth: Promise<ExecAuth> | undefined;
  const run = async (): Promise<string | undefined> => {
    auth ??= import('@kubernetes/client-node/dist/exec_auth.js').then((module) => new module.ExecAuth());
    const options: RequestOptions & { headers?: Record<string, string> } = {};
    await (await auth).applyAuthentication(user, options);
    if (options.cert) {
      throw new KubeconfigError(
        `user "${userName}": its exec plugin returned a client certificate, which the operator does not support; have it return a token`,
      );
    }
    return options.headers?.['Authorization']?.replace(/^Bearer /, '');
  };
  // Requests that need a token while the plugin runs wait for that run: ExecAuth caches only finished ones.
  let running: Promise<string | undefined> | undefined;
  return () =>
    (running ??= run().finally(() => {
      running = undefined;
    }));
}

async function fromKubeconfig(paths: string[]): Promise<Connection> {
  const config = await mergeKubeconfigs(paths);
  if (config.files.length === 0) throw new KubeconfigError(`kubeconfig: none of ${paths.join(', ')} exists`);
  const where = `kubeconfig ${config.files.join(':')}`;
  const contextName = config.currentContext;
  const context = contextName === undefined ? undefined : config.contexts.get(contextName)?.value;
  if (!context) throw new KubeconfigError(`${where}: current-context "${contextName ?? ''}" not found`);
  const cluster = config.clusters.get(context.cluster ?? '');
  if (!cluster || typeof cluster.value['server'] !== 'string') {
    throw new KubeconfigError(`${where}: cluster "${context.cluster ?? ''}" has no server`);
  }
  if (cluster.value['proxy-url'] !== undefined) {
    throw new KubeconfigError(
      `${cluster.file}: cluster "${context.cluster ?? ''}" sets proxy-url, which the operator does not support; reach the API server directly`,
    );
  }
  const userName = context.user ?? '';
  const located = config.users.get(userName);
  const user = located?.value ?? {};
  const userBase = located?.base ?? cluster.base;
  const refusals: Record<string, string> = {
    'auth-provider':
      'auth-provider plugins were removed from kubectl 1.26; use the exec credential plugin your cloud ships',
    username: 'basic authentication was removed from Kubernetes; use a token, a client certificate or an exec plugin',
  };
  for (const [field, why] of Object.entries(refusals)) {
    if (field in user) throw new KubeconfigError(`${located?.file ?? where}: user "${userName}" sets ${field}: ${why}`);
  }
  const token = user['token'];
  const tokenFile = user['tokenFile'];
  const exec = user['exec'] as ExecConfig | undefined;
  if (exec && typeof exec.command !== 'string') {
    throw new KubeconfigError(`${located?.file ?? where}: user "${userName}" has an exec plugin without a command`);
  }
  const tlsServerName = cluster.value['tls-server-name'];
  return {
    server: cluster.value['server'].replace(/\/+$/, ''),
    ca: material(cluster.value, 'certificate-authority', cluster.base),
    insecureSkipTlsVerify: cluster.value['insecure-skip-tls-verify'] === true,
    ...(typeof tlsServerName === 'string' ? { tlsServerName } : {}),
    clientCertificate: material(user, 'client-certificate', userBase),
    clientKey: material(user, 'client-key', userBase),
    token:
      typeof token === 'string'
        ? () => token
        : typeof tokenFile === 'string'
          ? tokenFromFile(resolvePath(tokenFile, userBase))
          : exec
            ? execToken(userName, exec, userBase)
            : () => undefined,
    namespace: context.namespace,
    source: where.replace(/^kubeconfig /, ''),
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

/** The connection kubectl would use from this environment. */
export async function loadConnection(env: NodeJS.ProcessEnv = process.env): Promise<Connection> {
  const fromEnv = (env['KUBECONFIG'] ?? '').split(':').filter((path) => path !== '');
  if (fromEnv.length > 0) return fromKubeconfig(fromEnv);
  const home = join(homedir(), '.kube', 'config');
  if (existsSync(home)) return fromKubeconfig([home]);
  return inCluster(env);
}
