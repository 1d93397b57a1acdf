/**
 * The project installed on a cluster with a real node the way a user installs
 * it: the operator with `kubectl apply -k config/default` (or the Helm chart),
 * the dev backends of `config/backends`, the sample of `config/samples`.
 *
 * Nothing is pulled: like `kind load docker-image`, the image built from the
 * Dockerfile is given, on the node, the names the manifests use
 * (`projectImageNames`), and the dev backends get the images built from
 * Debian's packages through a kustomize overlay that only swaps image names.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { helmOk, kubectlOk } from './kubectl.ts';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OPERATOR_NAMESPACE = 'taskapi-system';
export const BACKENDS_NAMESPACE = 'taskapi-backends';
export const OPERATOR_RELEASE = 'taskapi-operator';

/** A reference as containerd stores it: `taskapi-operator:0.1.0` is `docker.io/library/taskapi-operator:0.1.0`. */
export function normalizeImageName(name: string): string {
  const [first = '', ...rest] = name.split('/');
  const hasRegistry = rest.length > 0 && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (hasRegistry) return name;
  return rest.length === 0 ? `docker.io/library/${name}` : `docker.io/${name}`;
}

/**
 * The names the install surfaces give the project's image: the operator's in
 * config/manager (the chart's default is the same, its appVersion as the tag)
 * and the task service's in the sample TaskApi.
 */
export function projectImageNames(): string[] {
  const manager = parse(readFileSync(join(repoRoot, 'config', 'manager', 'manager.yaml'), 'utf8')) as {
    spec: { template: { spec: { containers: { image: string }[] } } };
  };
  const values = parse(readFileSync(join(repoRoot, 'charts', 'taskapi-operator', 'values.yaml'), 'utf8')) as {
    image: { repository: string; tag: string };
  };
  const chart = parse(readFileSync(join(repoRoot, 'charts', 'taskapi-operator', 'Chart.yaml'), 'utf8')) as {
    appVersion: string;
  };
  const sample = parse(readFileSync(join(repoRoot, 'config', 'samples', 'taskapi.yaml'), 'utf8')) as {
    spec: { image: string };
  };
  const names = [
    ...manager.spec.template.spec.containers.map((container) => container.image),
    `${values.image.repository}:${values.image.tag || chart.appVersion}`,
    sample.spec.image,
  ];
  return [...new Set(names.map(normalizeImageName))];
}

/** `kubectl apply -k config/default`, then waits for the operator's rollout. */
export async function installOperatorWithKustomize(kubeconfig: string): Promise<void> {
  // --force-conflicts: a CRD Helm installed earlier is taken over, as `kubectl apply` users do.
  await kubectlOk(kubeconfig, [
    'apply',
    '--server-side',
    '--force-conflicts',
    '-k',
    join(repoRoot, 'config', 'default'),
  ]);
  await waitForOperator(kubeconfig);
}

export async function uninstallOperatorWithKustomize(kubeconfig: string): Promise<void> {
  await kubectlOk(kubeconfig, [
    'delete',
    '-k',
    join(repoRoot, 'config', 'default'),
    '--wait=true',
    '--ignore-not-found',
  ]);
}

/** `helm install` of charts/taskapi-operator into taskapi-system, with its default values. */
export async function installOperatorWithHelm(kubeconfig: string, helmHome: string): Promise<void> {
  await helmOk(kubeconfig, helmHome, [
    'install',
    OPERATOR_RELEASE,
    join(repoRoot, 'charts', 'taskapi-operator'),
    '--namespace',
    OPERATOR_NAMESPACE,
    '--create-namespace',
    '--wait',
    '--timeout=3m',
  ]);
  await waitForOperator(kubeconfig);
}

async function waitForOperator(kubeconfig: string): Promise<void> {
  await kubectlOk(kubeconfig, [
    'rollout',
    'status',
    'deployment/taskapi-operator',
    '-n',
    OPERATOR_NAMESPACE,
    '--timeout=180s',
  ]);
}

/**
 * The dev Redis and PostgreSQL of config/backends, installed as users install
 * them (`kubectl apply -k`). With `images` (no registry here), through an
 * overlay that only swaps the public images for the ones built from Debian's
 * packages.
 */
export async function installBackends(
  kubeconfig: string,
  dir: string,
  images: { redis: string; postgres: string } | undefined,
): Promise<void> {
  const backends = join(repoRoot, 'config', 'backends');
  let source = backends;
  if (images) {
    source = join(dir, 'backends-overlay');
    mkdirSync(source, { recursive: true });
    const image = (name: string, built: string) => {
      const colon = built.lastIndexOf(':');
      return { name, newName: built.slice(0, colon), newTag: built.slice(colon + 1) };
    };
    writeFileSync(
      join(source, 'kustomization.yaml'),
      stringify({
        // kustomize takes a base outside the overlay only by a relative path.
        resources: [relative(source, backends)],
        images: [image('redis', images.redis), image('postgres', images.postgres)],
      }),
    );
  }
  await kubectlOk(kubeconfig, ['apply', '-k', source]);
  for (const deployment of ['redis', 'postgresql']) {
    await kubectlOk(kubeconfig, [
      'rollout',
      'status',
      `deployment/${deployment}`,
      '-n',
      BACKENDS_NAMESPACE,
      '--timeout=120s',
    ]);
  }
}

/** `kubectl apply -k config/samples` into `namespace`. */
export async function installSample(kubeconfig: string, namespace: string): Promise<void> {
  await kubectlOk(kubeconfig, ['apply', '-n', namespace, '-k', join(repoRoot, 'config', 'samples')]);
}
