import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { clusterRules, LEADER_ELECTION_RULES } from './controller/permissions.ts';
import { buildCrd } from './api/crd.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const header = '# Generated from src/ by `npm run generate`; do not edit.\n';
const chart = join(root, 'charts', 'taskapi-operator');

/**
 * Files rendered from the code. crds/ is the published CRD; config/crd and the
 * chart's crds/ hold copies because kustomize only loads files at or below a
 * kustomization and Helm only installs CRDs from inside the chart. The chart's
 * RBAC templates read their rules from files/ (`.Files.Get`), so kustomize and
 * Helm grant the same permissions. The operator's Node flags have one source,
 * config/manager/manager.yaml: the chart reads them from files/, and the
 * Dockerfile's CMD line is rewritten from them.
 */
export function generatedFiles(): Record<string, string> {
  const crd = `${header}${stringify(buildCrd(), { lineWidth: 0 })}`;
  const clusterRole = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'taskapi-operator' },
    rules: clusterRules(),
  };
  const leaderRole = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: 'taskapi-operator-leader-election' },
    rules: LEADER_ELECTION_RULES,
  };
  return {
    [join(root, 'crds', 'taskapi.dev_taskapis.yaml')]: crd,
    [join(root, 'config', 'crd', 'taskapi.dev_taskapis.yaml')]: crd,
    [join(root, 'config', 'rbac', 'role.yaml')]: `${header}${stringify(clusterRole)}`,
    [join(root, 'config', 'rbac', 'leader_election_role.yaml')]: `${header}${stringify(leaderRole)}`,
    [join(chart, 'crds', 'taskapi.dev_taskapis.yaml')]: crd,
    [join(chart, 'files', 'cluster-role-rules.yaml')]: `${header}${stringify(clusterRole.rules)}`,
    [join(chart, 'files', 'leader-election-rules.yaml')]: `${header}${stringify(leaderRole.rules)}`,
    [join(chart, 'files', 'operator-args.yaml')]: `${header}${stringify(operatorArgs())}`,
    [DOCKERFILE]: dockerfileWithCmd(readFileSync(DOCKERFILE, 'utf8'), operatorArgs()),
  };
}

const MANAGER = join(root, 'config', 'manager', 'manager.yaml');
const DOCKERFILE = join(root, 'Dockerfile');

/** The operator container's arguments to `node`, from the manifest `kubectl apply -k config/default` installs. */
export function operatorArgs(): string[] {
  const manifest = parse(readFileSync(MANAGER, 'utf8')) as {
    spec: { template: { spec: { containers: { name: string; args?: string[] }[] } } };
  };
  const args = manifest.spec.template.spec.containers.find((container) => container.name === 'operator')?.args;
  if (!args) throw new Error(`${MANAGER}: the operator container has no args`);
  return args;
}

/** The Dockerfile with its CMD (the operator, by default) set to `args`. */
function dockerfileWithCmd(dockerfile: string, args: string[]): string {
  const cmd = `CMD ${JSON.stringify(args).replaceAll(',', ', ')}`;
  if (!/^CMD .*$/m.test(dockerfile)) throw new Error(`${DOCKERFILE}: no CMD line`);
  return dockerfile.replace(/^CMD .*$/m, cmd);
}

export const CRD_FILE = join(root, 'crds', 'taskapi.dev_taskapis.yaml');
