import { describe, expect, it } from 'vitest';
import { containsDesired } from '../../src/controller/compare.ts';
import { childSnapshot, taskApiSnapshot } from '../../src/controller/snapshot.ts';
import { FIELD_MANAGER } from '../../src/controller/names.ts';
import { appliedFields as appliedFieldsOf, project } from '../../src/kube/managed-fields.ts';
import type { RawObject } from '../../src/kube/objects.ts';

const appliedFields = (raw: RawObject) => appliedFieldsOf(raw, FIELD_MANAGER);

/** A Deployment as the API server returns it after our apply, a kubectl edit of the image, and controller updates. */
function liveDeployment(image: string, imageOwner: 'taskapi-operator' | 'kubectl-edit'): RawObject {
  const ours = {
    'f:metadata': {
      'f:labels': { 'f:app.kubernetes.io/name': {} },
      'f:ownerReferences': { 'k:{"uid":"u-1"}': {} },
    },
    'f:spec': {
      'f:replicas': {},
      'f:template': {
        'f:spec': {
          'f:containers': {
            'k:{"name":"app"}': {
              '.': {},
              'f:name': {},
              'f:args': {},
              ...(imageOwner === 'taskapi-operator' ? { 'f:image': {} } : {}),
              'f:ports': {
                'k:{"containerPort":3000,"protocol":"TCP"}': { '.': {}, 'f:containerPort': {}, 'f:name': {} },
              },
              'f:resources': { 'f:limits': { 'f:memory': {} } },
            },
          },
        },
      },
    },
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'tasks',
      namespace: 'shop',
      resourceVersion: '42',
      generation: 3,
      labels: { 'app.kubernetes.io/name': 'tasks', 'added-by': 'someone-else' },
      annotations: { 'deployment.kubernetes.io/revision': '2' },
      ownerReferences: [{ kind: 'TaskApi', name: 'tasks', controller: true }],
      managedFields: [
        { manager: 'taskapi-operator', operation: 'Apply', fieldsV1: ours },
        {
          manager: 'kube-controller-manager',
          operation: 'Update',
          subresource: 'status',
          fieldsV1: { 'f:status': {} },
        },
      ],
    },
    spec: {
      replicas: 2,
      revisionHistoryLimit: 10,
      template: {
        spec: {
          dnsPolicy: 'ClusterFirst',
          containers: [
            {
              name: 'app',
              image,
              args: ['dist/service.js'],
              ports: [{ containerPort: 3000, name: 'http', protocol: 'TCP' }],
              resources: { limits: { memory: '512Mi' } },
              terminationMessagePath: '/dev/termination-log',
            },
            { name: 'injected', image: 'sidecar:1' },
          ],
        },
      },
    },
    status: { observedGeneration: 3, replicas: 2, updatedReplicas: 2, readyReplicas: 1, availableReplicas: 1 },
  };
}

const desired = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'tasks', namespace: 'shop', labels: { 'app.kubernetes.io/name': 'tasks' } },
  spec: {
    replicas: 2,
    template: {
      spec: {
        containers: [
          {
            name: 'app',
            image: 'tasks:1',
            args: ['dist/service.js'],
            ports: [{ containerPort: 3000, name: 'http' }],
            resources: { limits: { memory: '0.5Gi' } },
          },
        ],
      },
    },
  },
};

describe('child snapshots', () => {
  it('keep exactly the fields our field manager applied, and nothing others added', () => {
    const applied = appliedFields(liveDeployment('tasks:1', 'taskapi-operator')) as typeof desired;
    expect(applied.metadata.labels).toEqual({ 'app.kubernetes.io/name': 'tasks' });
    expect(applied.spec).not.toHaveProperty('revisionHistoryLimit');
    expect(applied.spec.template.spec.containers).toEqual([
      {
        name: 'app',
        image: 'tasks:1',
        args: ['dist/service.js'],
        ports: [{ containerPort: 3000, protocol: 'TCP', name: 'http' }],
        resources: { limits: { memory: '512Mi' } },
      },
    ]);
    expect(containsDesired(desired, applied)).toBe(true);
  });

  it('lose a field someone edited by hand, so the next pass applies it again', () => {
    const edited = liveDeployment('evil:6', 'kubectl-edit');
    const applied = appliedFields(edited);
    expect(containsDesired(desired, applied)).toBe(false);
    expect(childSnapshot(edited).appliedHash).not.toBe(
      childSnapshot(liveDeployment('tasks:1', 'taskapi-operator')).appliedHash,
    );
  });

  it('keep their applied hash through status updates and fields others set, so those cost no look', () => {
    const before = liveDeployment('tasks:1', 'taskapi-operator');
    const after = structuredClone(before);
    after['status'] = {
      observedGeneration: 3,
      replicas: 2,
      updatedReplicas: 2,
      readyReplicas: 2,
      availableReplicas: 2,
    };
    (after.metadata?.labels as Record<string, string>)['added-by'] = 'another-controller';
    expect(childSnapshot(after).appliedHash).toBe(childSnapshot(before).appliedHash);
  });

  it('change their applied hash when we apply again or the object is recreated', () => {
    const before = liveDeployment('tasks:1', 'taskapi-operator');
    const reapplied = structuredClone(before);
    const entry = reapplied.metadata?.managedFields?.[0];
    if (entry) entry.time = '2026-11-25T20:00:01Z';
    const recreated = structuredClone(before);
    if (recreated.metadata) recreated.metadata.uid = 'u-2';
    const hashes = [before, reapplied, recreated].map((raw) => childSnapshot(raw).appliedHash);
    expect(new Set(hashes).size).toBe(3);
  });

  it('carry the owner and, for Deployments, the rollout numbers', () => {
    const snapshot = childSnapshot(liveDeployment('tasks:1', 'taskapi-operator'));
    expect(snapshot.owner).toBe('tasks');
    expect(snapshot.metadata).toEqual({ namespace: 'shop', name: 'tasks', resourceVersion: '42' });
    expect(snapshot.rollout).toEqual({
      metadata: { generation: 3 },
      spec: { replicas: 2 },
      status: { observedGeneration: 3, replicas: 2, updatedReplicas: 2, readyReplicas: 1, availableReplicas: 1 },
    });
  });

  it('of an object nobody applied hold only its identity', () => {
    const metadata = { ...liveDeployment('tasks:1', 'taskapi-operator').metadata, managedFields: [] };
    const applied = appliedFields({ apiVersion: 'v1', kind: 'Service', metadata });
    expect(applied).toEqual({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'tasks', namespace: 'shop' },
    });
    expect(containsDesired(desired, applied)).toBe(false);
  });
});

describe('project', () => {
  it('picks set members by value and list items by index', () => {
    expect(project({ finalizers: ['a', 'b', 'c'] }, { 'f:finalizers': { 'v:"b"': {} } })).toEqual({
      finalizers: ['b'],
    });
    expect(project({ items: [{ x: 1, y: 2 }, { x: 3 }] }, { 'f:items': { 'i:1': { 'f:x': {} } } })).toEqual({
      items: [{ x: 3 }],
    });
  });
});

describe('TaskApi snapshots', () => {
  it('drop managedFields and annotations such as kubectl last-applied, keeping spec and status', () => {
    const snapshot = taskApiSnapshot({
      apiVersion: 'taskapi.dev/v1alpha1',
      kind: 'TaskApi',
      metadata: {
        name: 'tasks',
        namespace: 'shop',
        uid: 'u-1',
        generation: 2,
        resourceVersion: '7',
        annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"a":1}' },
        managedFields: [{ manager: 'kubectl', operation: 'Apply', fieldsV1: {} }],
      },
      spec: { image: 'tasks:1' },
      status: { stateBackend: 'redis' },
    });
    expect(snapshot).toEqual({
      apiVersion: 'taskapi.dev/v1alpha1',
      kind: 'TaskApi',
      metadata: { name: 'tasks', namespace: 'shop', uid: 'u-1', generation: 2, resourceVersion: '7' },
      spec: { image: 'tasks:1' },
      status: { stateBackend: 'redis' },
    });
  });
});
