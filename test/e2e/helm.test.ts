/**
 * The operator installed with its Helm chart (charts/taskapi-operator, default
 * values, the helm built here) runs the sample on the real chain: its RBAC and
 * its Deployment are what is tested, as config/default's are in chain.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helm } from '../../testbed/harness/kubectl.ts';
import {
  installBackends,
  installOperatorWithHelm,
  installSample,
  OPERATOR_NAMESPACE,
  OPERATOR_RELEASE,
} from '../../testbed/harness/install.ts';
import { chain, createNamespace, k, kTry, podNames, portForward } from '../support/cluster.ts';

const namespace = 'e2e-helm';

beforeAll(async () => {
  const { kubeconfig, dir, backendImages, helmHome } = chain();
  await installBackends(kubeconfig, dir, backendImages);
  await installOperatorWithHelm(kubeconfig, helmHome);
  await createNamespace(namespace);
  await installSample(kubeconfig, namespace);
});

afterAll(async () => {
  const { kubeconfig, helmHome } = chain();
  await kTry(['delete', 'namespace', namespace, '--wait=true', '--timeout=120s']);
  await helm(kubeconfig, helmHome, ['uninstall', OPERATOR_RELEASE, '--namespace', OPERATOR_NAMESPACE, '--wait']);
});

describe('the operator installed with its Helm chart', () => {
  it('runs two replicas, one leading, and brings the sample to Ready with real task pods that serve', async () => {
    const operators = await podNames(OPERATOR_NAMESPACE, 'app.kubernetes.io/name=taskapi-operator');
    expect(operators).toHaveLength(2);
    await k(['wait', '--for=condition=Ready', 'taskapi/tasks', '-n', namespace, '--timeout=180s']);
    const holder = await k([
      'get',
      'lease',
      '-n',
      OPERATOR_NAMESPACE,
      '-o',
      'jsonpath={.items[*].spec.holderIdentity}',
    ]);
    expect(operators).toContain(holder.trim());

    const pods = await podNames(namespace, 'app.kubernetes.io/instance=tasks,app.kubernetes.io/component=task-service');
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      expect(await k(['get', 'pod', pod, '-n', namespace, '-o', 'jsonpath={.status.containerStatuses[*].ready}'])).toBe(
        'true true',
      );
    }
    const forward = await portForward(namespace, 'service/tasks', 80);
    try {
      const created = await fetch(`${forward.url}/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ title: 'installed with Helm' }),
      });
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as { id: string };
      expect((await fetch(`${forward.url}/tasks/${id}`)).status).toBe(200);
    } finally {
      await forward.stop();
    }
  });
});
