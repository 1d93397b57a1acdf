/**
 * The Helm chart against the real test bed, with the helm built by testbed/build.sh.
 * Its manifests are compared with `kubectl kustomize config/default`, so the two
 * install surfaces cannot drift apart; values are checked by what they render.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { helm, helmOk, kubectlOk } from '../../testbed/harness/kubectl.ts';

const { kubeconfig, dir } = inject('testbed');
const helmHome = join(dir, 'helm');
const chart = 'charts/taskapi-operator';
const release = 'taskapi-operator';
/** config/default's namespace: rendering into it makes the chart's objects directly comparable. */
const kustomizeNamespace = 'taskapi-system';

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
}
interface EnvVar {
  name: string;
  value?: string;
}
interface Container {
  image: string;
  imagePullPolicy?: string;
  env: EnvVar[];
}
interface PodSpec {
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  containers: Container[];
}
interface Deployment extends Manifest {
  spec: { replicas: number; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}
interface Role extends Manifest {
  rules: unknown[];
}
interface Binding extends Manifest {
  roleRef: unknown;
  subjects: unknown[];
}
interface Service extends Manifest {
  spec: { selector: Record<string, string>; ports: { port: number; targetPort: string }[] };
}

const parseManifests = (text: string): Manifest[] =>
  parseAllDocuments(text)
    .map((document) => document.toJS() as Manifest | null)
    .filter((manifest): manifest is Manifest => manifest !== null);

const template = (namespace: string, args: string[] = []): Promise<string> =>
  helmOk(kubeconfig, helmHome, ['template', release, chart, '-n', namespace, ...args]);

/** The chart rendered into config/default's namespace with `--set` values. */
const render = async (values: string[] = []): Promise<Manifest[]> =>
  parseManifests(
    await template(
      kustomizeNamespace,
      values.flatMap((value) => ['--set', value]),
    ),
  );

function only(manifests: Manifest[], kind: string, nameSuffix = ''): Manifest {
  const found = manifests.filter((m) => m.kind === kind && m.metadata.name.endsWith(nameSuffix));
  if (found.length !== 1) throw new Error(`expected one ${kind} *${nameSuffix}, found ${found.length}`);
  return found[0] as Manifest;
}
const deploymentIn = (manifests: Manifest[]): Deployment => only(manifests, 'Deployment') as Deployment;
const container = (deployment: Deployment): Container => {
  const first = deployment.spec.template.spec.containers[0];
  if (!first) throw new Error(`Deployment ${deployment.metadata.name} has no container`);
  return first;
};
const envOf = (manifests: Manifest[]): EnvVar[] => container(deploymentIn(manifests)).env;
const ids = (manifests: Manifest[]): string[] => manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort();

let kustomized: Manifest[];
let defaults: Manifest[];

beforeAll(async () => {
  kustomized = parseManifests(await kubectlOk(kubeconfig, ['kustomize', 'config/default']));
  defaults = parseManifests(await template(kustomizeNamespace, ['--include-crds']));
});

describe('the Helm chart', () => {
  it('passes helm lint --strict', async () => {
    const result = await helm(kubeconfig, helmHome, ['lint', '--strict', chart]);
    expect(result.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(result.exitCode).toBe(0);
  });

  it('renders the objects config/default installs, in the release namespace', () => {
    const kustomizedWithoutNamespace = kustomized.filter((m) => m.kind !== 'Namespace');
    expect(ids(defaults)).toEqual(ids(kustomizedWithoutNamespace));
    for (const manifest of defaults.filter((m) => m.metadata.namespace !== undefined)) {
      expect(manifest.metadata.namespace, `${manifest.kind}/${manifest.metadata.name}`).toBe(kustomizeNamespace);
    }
  });

  it('installs the CRD of config/crd', () => {
    expect(only(defaults, 'CustomResourceDefinition')).toEqual(only(kustomized, 'CustomResourceDefinition'));
  });

  it('runs the operator pod exactly as config/manager does (args, env, probes, ports, security, resources)', () => {
    const chartDeployment = deploymentIn(defaults);
    const kustomizeDeployment = deploymentIn(kustomized);
    // The pull policy is the one value config/manager leaves to the cluster's default.
    const withoutPullPolicy = (spec: PodSpec): PodSpec => ({
      ...spec,
      containers: spec.containers.map((c) => ({ ...c, imagePullPolicy: undefined })),
    });
    expect(withoutPullPolicy(chartDeployment.spec.template.spec)).toEqual(kustomizeDeployment.spec.template.spec);
    expect(chartDeployment.spec.replicas).toBe(kustomizeDeployment.spec.replicas);
  });

  it("grants exactly the RBAC of config/rbac, to the operator's ServiceAccount", () => {
    for (const kind of ['ClusterRole', 'Role']) {
      expect((only(defaults, kind) as Role).rules, kind).toEqual((only(kustomized, kind) as Role).rules);
    }
    for (const kind of ['ClusterRoleBinding', 'RoleBinding']) {
      const [chartBinding, kustomizeBinding] = [only(defaults, kind) as Binding, only(kustomized, kind) as Binding];
      expect({ roleRef: chartBinding.roleRef, subjects: chartBinding.subjects }, kind).toEqual({
        roleRef: kustomizeBinding.roleRef,
        subjects: kustomizeBinding.subjects,
      });
    }
  });

  it('applies cleanly on the server (dry run) in a fresh release namespace', async () => {
    const namespace = 'helm-dry-run';
    await kubectlOk(kubeconfig, ['create', 'namespace', namespace]);
    const rendered = await template(namespace, ['--include-crds']);
    const output = await kubectlOk(kubeconfig, ['apply', '--dry-run=server', '-f', '-'], rendered);
    const applied = output.trim().split('\n');
    expect(applied).toHaveLength(parseManifests(rendered).length);
    for (const line of applied) expect(line).toMatch(/ (created|configured|unchanged) \(server dry run\)$/);
  });

  it('installs with helm into a namespace enforcing the restricted Pod Security Standard, and uninstalls', async () => {
    const namespace = 'helm-install';
    await kubectlOk(kubeconfig, ['create', 'namespace', namespace]);
    await kubectlOk(kubeconfig, ['label', 'namespace', namespace, 'pod-security.kubernetes.io/enforce=restricted']);
    await helmOk(kubeconfig, helmHome, ['install', release, chart, '-n', namespace, '--wait', '--timeout', '90s']);
    const readyReplicas = await kubectlOk(kubeconfig, [
      ...['get', 'deployment', release, '-n', namespace],
      ...['-o', 'jsonpath={.status.readyReplicas}'],
    ]);
    expect(readyReplicas).toBe('2');

    await helmOk(kubeconfig, helmHome, ['uninstall', release, '-n', namespace, '--wait', '--timeout', '60s']);
    const left = await kubectlOk(kubeconfig, [
      ...['get', 'deployment,serviceaccount,role,rolebinding,clusterrole,clusterrolebinding'],
      ...['-n', namespace, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'name'],
    ]);
    expect(left.trim()).toBe('');
  });
});

describe('chart values', () => {
  it('replicaCount sets the Deployment replicas', async () => {
    expect(deploymentIn(await render(['replicaCount=3'])).spec.replicas).toBe(3);
  });

  it('image.* set the operator image and pull policy', async () => {
    const manifests = await render([
      'image.repository=registry.example/taskapi-operator',
      'image.tag=1.2.3',
      'image.pullPolicy=Always',
    ]);
    const { image, imagePullPolicy } = container(deploymentIn(manifests));
    expect({ image, imagePullPolicy }).toEqual({
      image: 'registry.example/taskapi-operator:1.2.3',
      imagePullPolicy: 'Always',
    });
  });

  it('leaderElection.enabled=false sets LEADER_ELECT=false and drops the Lease permissions', async () => {
    const manifests = await render(['leaderElection.enabled=false', 'replicaCount=1']);
    expect(envOf(manifests)).toContainEqual({ name: 'LEADER_ELECT', value: 'false' });
    expect(manifests.filter((m) => m.kind === 'Role' || m.kind === 'RoleBinding')).toEqual([]);
    expect(envOf(defaults).map((env) => env.name)).not.toContain('LEADER_ELECT');
  });

  it('refuses more than one replica without leader election, naming both values', async () => {
    const result = await helm(kubeconfig, helmHome, [
      ...['template', release, chart, '--set', 'leaderElection.enabled=false'],
    ]);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain('replicaCount=2 needs leaderElection.enabled=true');
  });

  it('logLevel and concurrency reach the operator as LOG_LEVEL and OPERATOR_CONCURRENCY', async () => {
    const env = envOf(await render(['logLevel=debug', 'concurrency=4']));
    expect(env).toContainEqual({ name: 'LOG_LEVEL', value: 'debug' });
    expect(env).toContainEqual({ name: 'OPERATOR_CONCURRENCY', value: '4' });
  });

  it('refuses a log level the operator would reject, naming the value', async () => {
    const result = await helm(kubeconfig, helmHome, ['template', release, chart, '--set', 'logLevel=verbose']);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain('/logLevel');
  });

  it("metrics.service.enabled adds a Service in front of the pods' metrics port", async () => {
    expect(defaults.filter((m) => m.kind === 'Service')).toEqual([]);
    const manifests = await render(['metrics.service.enabled=true']);
    const service = only(manifests, 'Service', '-metrics') as Service;
    const podLabels = deploymentIn(manifests).spec.template.metadata.labels;
    expect(podLabels).toMatchObject(service.spec.selector);
    expect(service.spec.ports).toEqual([{ name: 'metrics', port: 8080, targetPort: 'metrics' }]);
  });

  it('nodeSelector and tolerations reach the pod', async () => {
    const toleration = { key: 'dedicated', operator: 'Equal', value: 'operators', effect: 'NoSchedule' };
    const manifests = await render([
      'nodeSelector.pool=operators',
      ...Object.entries(toleration).map(([key, value]) => `tolerations[0].${key}=${value}`),
    ]);
    const pod = deploymentIn(manifests).spec.template.spec;
    expect(pod.nodeSelector).toEqual({ pool: 'operators' });
    expect(pod.tolerations).toEqual([toleration]);
  });
});
