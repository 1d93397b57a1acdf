/**
 * Where the test bed's programs come from, and a loud failure when one is missing.
 * Versions are read from testbed/versions.env, the one place they are pinned.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const testbedDir = dirname(dirname(fileURLToPath(import.meta.url)));

export class MissingPrerequisiteError extends Error {
  constructor(what: string, howToGetIt: string) {
    super(`test bed prerequisite missing: ${what}. ${howToGetIt}`);
    this.name = 'MissingPrerequisiteError';
  }
}

export interface Versions {
  KUBERNETES_VERSION: string;
  ETCD_VERSION: string;
  KWOK_VERSION: string;
  DAPR_VERSION: string;
  HELM_VERSION: string;
  CONTAINERD_VERSION: string;
  CNI_PLUGINS_VERSION: string;
  COREDNS_VERSION: string;
  SCHEMATHESIS_VERSION: string;
}

export const versions: Versions = parseVersions(readFileSync(join(testbedDir, 'versions.env'), 'utf8'));

function parseVersions(text: string): Versions {
  const entries = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Z_]+)=(\S+)$/.exec(line.trim());
    if (match?.[1] && match[2]) entries.set(match[1], match[2]);
  }
  const read = (key: keyof Versions): string => {
    const value = entries.get(key);
    if (!value) throw new Error(`testbed/versions.env does not pin ${key}`);
    return value;
  };
  return {
    KUBERNETES_VERSION: read('KUBERNETES_VERSION'),
    ETCD_VERSION: read('ETCD_VERSION'),
    KWOK_VERSION: read('KWOK_VERSION'),
    DAPR_VERSION: read('DAPR_VERSION'),
    HELM_VERSION: read('HELM_VERSION'),
    CONTAINERD_VERSION: read('CONTAINERD_VERSION'),
    CNI_PLUGINS_VERSION: read('CNI_PLUGINS_VERSION'),
    COREDNS_VERSION: read('COREDNS_VERSION'),
    SCHEMATHESIS_VERSION: read('SCHEMATHESIS_VERSION'),
  };
}

/** Same rule as testbed/build.sh. */
export const cacheDir =
  process.env['TASKAPI_TESTBED_CACHE'] ??
  join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'taskapi-testbed');

const buildHint = 'Build it with `npm run setup` (runs testbed/build.sh; a cold build takes about half an hour).';

/** The version each of testbed/build.sh's cache entries is built at. */
const componentVersions = {
  etcd: versions.ETCD_VERSION,
  kwok: versions.KWOK_VERSION,
  kubernetes: versions.KUBERNETES_VERSION,
  'kubernetes-node': versions.KUBERNETES_VERSION,
  containerd: versions.CONTAINERD_VERSION,
  'cni-plugins': versions.CNI_PLUGINS_VERSION,
  coredns: versions.COREDNS_VERSION,
  daprd: versions.DAPR_VERSION,
  'dapr-controlplane': versions.DAPR_VERSION,
  helm: versions.HELM_VERSION,
};
export type BuiltComponent = keyof typeof componentVersions;

/** A program built by testbed/build.sh, e.g. goBinary('kubernetes', 'kube-apiserver'). */
export function goBinary(component: BuiltComponent, program: string): string {
  const version = componentVersions[component];
  const dir = join(cacheDir, 'bin', `${component}-${version}`);
  const path = join(dir, program);
  if (!existsSync(join(dir, '.complete')) || !existsSync(path)) {
    throw new MissingPrerequisiteError(`${program} ${version} (expected at ${path})`, buildHint);
  }
  return path;
}

/** The API fuzzer, from the virtual environment testbed/python.sh makes. */
export function schemathesisBinary(): string {
  const dir = join(cacheDir, 'venv', `schemathesis-${versions.SCHEMATHESIS_VERSION}`);
  const path = join(dir, 'bin', 'schemathesis');
  if (!existsSync(join(dir, '.complete')) || !existsSync(path)) {
    throw new MissingPrerequisiteError(
      `schemathesis ${versions.SCHEMATHESIS_VERSION} (expected at ${path})`,
      'Install it with `npm run setup` (runs testbed/python.sh).',
    );
  }
  return path;
}

/** A program found on PATH, e.g. kubectl or redis-server. */
export function systemBinary(program: string, howToGetIt: string): string {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    const path = join(dir, program);
    if (dir && existsSync(path)) return path;
  }
  throw new MissingPrerequisiteError(`${program} is not on PATH`, howToGetIt);
}

const aptHint = (pkg: string): string =>
  `Install it with \`apt-get install -y ${pkg}\` (or run \`npm run setup\` as root).`;

export const redisServerBinary = (): string => systemBinary('redis-server', aptHint('redis-server'));
/** The kubectl built with the control plane: a kubectl on PATH may be outside the supported version skew. */
export const kubectlBinary = (): string => goBinary('kubernetes', 'kubectl');
/** The helm built from the Go module proxy at the pinned version: the chart is tested with that one. */
export const helmBinary = (): string => goBinary('helm', 'helm');

/** Directory holding initdb, postgres and pg_isready: Debian keeps them out of PATH. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((entry) => /^\d+$/.test(entry)) : [];
  const newest = majors.sort((a, b) => Number(b) - Number(a))[0];
  const dir = newest && join(root, newest, 'bin');
  if (!dir || !existsSync(join(dir, 'postgres'))) {
    throw new MissingPrerequisiteError(
      'PostgreSQL server (/usr/lib/postgresql/<major>/bin/postgres)',
      aptHint('postgresql'),
    );
  }
  return dir;
}

/** A module's directory in the Go module cache, where testbed/build.sh's `go build` put it. */
export function goModuleDir(modulePath: string, version: string): string {
  let modCache: string;
  try {
    modCache = execFileSync('go', ['env', 'GOMODCACHE'], { encoding: 'utf8' }).trim();
  } catch {
    throw new MissingPrerequisiteError('go (needed to locate the Go module cache)', 'Install Go >= 1.26.');
  }
  // The module cache escapes upper-case letters as '!' + lower case.
  const escaped = modulePath.replace(/[A-Z]/g, (letter) => `!${letter.toLowerCase()}`);
  const dir = join(modCache, `${escaped}@${version}`);
  if (!existsSync(dir))
    throw new MissingPrerequisiteError(`Go module ${modulePath}@${version} (expected at ${dir})`, buildHint);
  return dir;
}
