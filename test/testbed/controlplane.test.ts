import { describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { kubectl, kubectlOk } from '../../testbed/harness/kubectl.ts';

const { kubeconfig, nodeName } = inject('testbed');

interface PodList {
  items: { spec: { nodeName?: string }; status: { conditions?: { type: string; status: string }[] } }[];
}

describe('the Kubernetes control plane', () => {
  it('runs a Deployment applied with kubectl to ready pods on the kwok node, and garbage-collects it with its owner', async () => {
    const namespace = 'smoke-deployment';
    await kubectlOk(kubeconfig, ['create', 'namespace', namespace]);
    await kubectlOk(kubeconfig, ['create', 'configmap', 'owner', '-n', namespace]);
    const ownerUid = await kubectlOk(kubeconfig, [
      'get',
      'configmap',
      'owner',
      '-n',
      namespace,
      '-o',
      'jsonpath={.metadata.uid}',
    ]);
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: 'web',
        namespace,
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: ownerUid }],
      },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: { containers: [{ name: 'web', image: 'registry.example/web:1' }] },
        },
      },
    };
    await kubectlOk(kubeconfig, ['apply', '-f', '-'], stringify(deployment));

    await kubectlOk(kubeconfig, [
      'wait',
      '--for=condition=Available',
      'deployment/web',
      '-n',
      namespace,
      '--timeout=60s',
    ]);
    const ready = await kubectlOk(kubeconfig, [
      'get',
      'deployment',
      'web',
      '-n',
      namespace,
      '-o',
      'jsonpath={.status.readyReplicas}',
    ]);
    expect(ready).toBe('2');
    const pods = JSON.parse(
      await kubectlOk(kubeconfig, ['get', 'pods', '-n', namespace, '-l', 'app=web', '-o', 'json']),
    ) as PodList;
    expect(pods.items).toHaveLength(2);
    for (const pod of pods.items) {
      expect(pod.spec.nodeName).toBe(nodeName);
      expect(pod.status.conditions?.find((condition) => condition.type === 'Ready')?.status).toBe('True');
    }

    await kubectlOk(kubeconfig, ['delete', 'configmap', 'owner', '-n', namespace]);
    await kubectlOk(kubeconfig, ['wait', '--for=delete', 'deployment/web', '-n', namespace, '--timeout=60s']);
    await kubectlOk(kubeconfig, ['wait', '--for=delete', 'pods', '-l', 'app=web', '-n', namespace, '--timeout=60s']);
    const leftovers = await kubectlOk(kubeconfig, ['get', 'replicasets,pods', '-n', namespace, '-o', 'name']);
    expect(leftovers.trim()).toBe('');
  });

  it('serves Dapr Components and v2alpha1 Subscriptions, and refuses a Component without spec.type', async () => {
    const namespace = 'smoke-dapr-crds';
    await kubectlOk(kubeconfig, ['create', 'namespace', namespace]);
    const component = {
      apiVersion: 'dapr.io/v1alpha1',
      kind: 'Component',
      metadata: { name: 'statestore', namespace },
      spec: { type: 'state.redis', version: 'v1', metadata: [{ name: 'redisHost', value: 'localhost:6379' }] },
    };
    const subscription = {
      apiVersion: 'dapr.io/v2alpha1',
      kind: 'Subscription',
      metadata: { name: 'tasks', namespace },
      spec: { pubsubname: 'pubsub', topic: 'tasks', routes: { default: '/events/task' } },
    };
    await kubectlOk(
      kubeconfig,
      ['apply', '-f', '-'],
      [component, subscription].map((doc) => stringify(doc)).join('---\n'),
    );

    const stored = await kubectlOk(kubeconfig, [
      'get',
      'component.dapr.io/statestore',
      '-n',
      namespace,
      '-o',
      'jsonpath={.spec.type}',
    ]);
    expect(stored).toBe('state.redis');
    const route = await kubectlOk(kubeconfig, [
      'get',
      'subscriptions.v2alpha1.dapr.io/tasks',
      '-n',
      namespace,
      '-o',
      'jsonpath={.apiVersion} {.spec.routes.default}',
    ]);
    expect(route).toBe('dapr.io/v2alpha1 /events/task');

    const invalid = { ...component, metadata: { name: 'broken', namespace }, spec: { version: 'v1' } };
    const refused = await kubectl(kubeconfig, ['apply', '-f', '-'], stringify(invalid));
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toMatch(/spec\.type: Required value/);
    const missing = await kubectl(kubeconfig, ['get', 'component.dapr.io/broken', '-n', namespace]);
    expect(missing.exitCode).not.toBe(0);
  });
});
