/**
 * Least privilege, asked of the real kube-apiserver's authorizer: the
 * operator's service account (config/rbac, as `kubectl apply -k` installs it)
 * can do exactly what src/controller/permissions.ts generates, and a table of
 * `kubectl auth can-i` checks shows what it cannot; a task service's account
 * reads exactly the Secrets its TaskApi references.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { clusterRules, LEADER_ELECTION_RULES, type PolicyRule } from '../../src/controller/permissions.ts';
import {
  buildSecretReaderRole,
  buildSecretReaderRoleBinding,
  buildServiceAccount,
} from '../../src/controller/resources/rbac.ts';
import { OPERATOR_NAMESPACE, repoRoot } from '../../testbed/harness/install.ts';
import { kubectl, kubectlOk } from '../../testbed/harness/kubectl.ts';
import { taskApiFixture } from '../support/taskapi-fixtures.ts';

const { kubeconfig } = inject('testbed');
const k = (args: string[], input?: string) => kubectlOk(kubeconfig, args, input);
/**
 * config/rbac as installed, under names of this file's own: the test bed is shared, and the install tests
 * (helm's among them) need the real names free. The rules are the generated ones, unchanged.
 */
const OWN_NAMESPACE = 'rbac-operator';
const OPERATOR = `system:serviceaccount:${OWN_NAMESPACE}:taskapi-operator`;

interface Manifest {
  kind: string;
  metadata: { name: string };
  roleRef: { name: string };
  subjects?: { namespace?: string }[];
}

async function installRbacAsOwn(): Promise<void> {
  const documents = parseAllDocuments(await k(['kustomize', join(repoRoot, 'config', 'rbac')])).map(
    (document) => document.toJSON() as Manifest,
  );
  for (const manifest of documents) {
    if (manifest.kind === 'ClusterRole' || manifest.kind === 'ClusterRoleBinding') {
      manifest.metadata.name = `rbac-test-${manifest.metadata.name}`;
    }
    if (manifest.kind === 'ClusterRoleBinding') manifest.roleRef.name = `rbac-test-${manifest.roleRef.name}`;
    for (const subject of manifest.subjects ?? []) {
      if (subject.namespace === OPERATOR_NAMESPACE) subject.namespace = OWN_NAMESPACE;
    }
    await k(['apply', '-n', OWN_NAMESPACE, '-f', '-'], JSON.stringify(manifest));
  }
}
const TEAM = 'rbac-team';

/** `kubectl auth can-i VERB RESOURCE --as SUBJECT`: yes or no, as the apiserver's authorizer answers. */
async function can(subject: string, verb: string, resource: string, namespace?: string): Promise<boolean> {
  // `pods/exec`: a subresource; `secret/name`: one object.
  const [kind, rest] = resource.split('/');
  const subresource = rest !== undefined && !resource.startsWith('secret/') ? rest : undefined;
  const result = await kubectl(kubeconfig, [
    'auth',
    'can-i',
    verb,
    subresource === undefined ? resource : (kind ?? ''),
    ...(subresource === undefined ? [] : [`--subresource=${subresource}`]),
    `--as=${subject}`,
    ...(namespace ? ['-n', namespace] : ['--all-namespaces']),
  ]);
  const answer = result.stdout.trim();
  if (answer !== 'yes' && answer !== 'no') throw new Error(`can-i ${verb} ${resource}: ${result.stderr}`);
  return answer === 'yes';
}

/** `kubectl auth can-i --list` as rows "resource verb" (resource rules only; the built-in self reviews left out). */
async function listed(subject: string, namespace: string): Promise<string[]> {
  const table = await k(['auth', 'can-i', '--list', `--as=${subject}`, '-n', namespace, '--no-headers']);
  return table
    .split('\n')
    .map((line) => /^(\S+)\s+\[\]\s+\[([^\]]*)\]\s+\[([^\]]*)\]$/.exec(line.trim()))
    .filter((match): match is RegExpExecArray => match !== null)
    .filter(([, resource]) => !resource?.startsWith('selfsubject'))
    .flatMap(([, resource, names, verbs]) =>
      (verbs ?? '')
        .split(' ')
        .filter(Boolean)
        .map((verb) => `${resource}${names ? `/${names}` : ''} ${verb}`),
    )
    .sort();
}

/** What `rules` grant, in can-i --list's spelling: `plural.group verb` (core resources have no group). */
const rowsOf = (rules: PolicyRule[]): string[] =>
  rules
    .flatMap((rule) =>
      rule.apiGroups.flatMap((group) =>
        rule.resources.flatMap((resource) =>
          rule.verbs.map((verb) => {
            const [plural, subresource] = resource.split('/');
            const name = group === '' ? plural : `${plural}.${group}`;
            return `${name}${subresource === undefined ? '' : `/${subresource}`} ${verb}`;
          }),
        ),
      ),
    )
    .sort();

describe("the operator's service account", () => {
  beforeAll(async () => {
    await k(['create', 'namespace', OWN_NAMESPACE]);
    await installRbacAsOwn();
    await kubectl(kubeconfig, ['create', 'namespace', TEAM]);
  });

  it('can do exactly what the generated rules say, cluster-wide and in its own namespace', async () => {
    // In a team's namespace: the ClusterRole alone.
    expect(await listed(OPERATOR, TEAM)).toEqual(rowsOf(clusterRules()));
    // In its own: the leader election Lease besides.
    expect(await listed(OPERATOR, OWN_NAMESPACE)).toEqual(rowsOf([...clusterRules(), ...LEADER_ELECTION_RULES]));
  });

  const mustNot: [string, string, string | undefined][] = [
    // Secrets: read one by name (preflight, its tokens) and create its tokens' Secrets, never more.
    ['list', 'secrets', TEAM],
    ['watch', 'secrets', TEAM],
    ['update', 'secrets', TEAM],
    ['patch', 'secrets', TEAM],
    ['delete', 'secrets', TEAM],
    // Pods: listed fresh, never made, changed, exec'd into or deleted; only their logs read.
    ['create', 'pods', TEAM],
    ['delete', 'pods', TEAM],
    ['create', 'pods/exec', TEAM],
    ['get', 'pods', TEAM],
    ['watch', 'pods', TEAM],
    // Nothing about the cluster itself.
    ['create', 'namespaces', undefined],
    ['delete', 'namespaces', undefined],
    ['get', 'nodes', undefined],
    ['create', 'clusterroles.rbac.authorization.k8s.io', undefined],
    ['bind', 'clusterroles.rbac.authorization.k8s.io', undefined],
    ['escalate', 'roles.rbac.authorization.k8s.io', TEAM],
    ['impersonate', 'serviceaccounts', TEAM],
    ['create', 'serviceaccounts/token', TEAM],
    ['update', 'customresourcedefinitions.apiextensions.k8s.io', undefined],
    ['delete', 'taskapis.taskapi.dev', TEAM],
    ['update', 'taskapis.taskapi.dev', TEAM],
    ['update', 'leases.coordination.k8s.io', TEAM],
  ];
  it.each(mustNot)('cannot %s %s', async (verb, resource, namespace) => {
    expect(await can(OPERATOR, verb, resource, namespace)).toBe(false);
  });

  it('can what it must: apply and prune its children, read a Secret, write TaskApi status', async () => {
    for (const [verb, resource] of [
      ['patch', 'deployments.apps'],
      ['delete', 'components.dapr.io'],
      ['get', 'secrets'],
      ['create', 'secrets'],
      ['patch', 'taskapis.taskapi.dev/status'],
      ['list', 'pods'],
      // A restarting sidecar's previous log names the Component it fails on (status: ComponentFailed).
      ['get', 'pods/log'],
      ['create', 'events'],
    ]) {
      expect(await can(OPERATOR, verb as string, resource as string, TEAM), `${verb} ${resource}`).toBe(true);
    }
  });
});

describe("a task service's account", () => {
  // References the Redis password and the PostgreSQL connection string (fixture) and an API token.
  const taskApi = taskApiFixture({ apiTokenSecretRef: { name: 'api-token', key: 'token' } }, 'tasks', TEAM);
  const account = `system:serviceaccount:${TEAM}:tasks`;
  beforeAll(async () => {
    await kubectl(kubeconfig, ['create', 'namespace', TEAM]);
    // What the operator renders for it, without the owner reference (this TaskApi is not stored).
    const objects = [
      buildServiceAccount(taskApi),
      buildSecretReaderRole(taskApi),
      buildSecretReaderRoleBinding(taskApi),
    ];
    for (const object of objects) {
      const manifest = JSON.parse(JSON.stringify(object)) as { metadata: { ownerReferences?: unknown } };
      delete manifest.metadata.ownerReferences;
      await k(['apply', '-f', '-'], JSON.stringify(manifest));
    }
  });

  it('reads exactly the Secrets its TaskApi references, and lists none', async () => {
    const referenced = buildSecretReaderRole(taskApi).rules?.[0]?.resourceNames ?? [];
    expect(referenced.length).toBeGreaterThanOrEqual(3);
    for (const name of referenced) expect(await can(account, 'get', `secret/${name}`, TEAM), name).toBe(true);
    for (const other of ['tasks-swap-control', 'tasks-dapr-app-token', 'tasks-dapr-api-token', 'someone-else']) {
      expect(await can(account, 'get', `secret/${other}`, TEAM), other).toBe(false);
    }
    expect(await can(account, 'list', 'secrets', TEAM)).toBe(false);
    expect(await can(account, 'get', `secret/${referenced[0] ?? ''}`, 'default')).toBe(false);
    expect(await can(account, 'list', 'pods', TEAM)).toBe(false);
  });
});
