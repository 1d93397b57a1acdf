/**
 * The task service's own ServiceAccount, allowed to read exactly the Secrets
 * its TaskApi references (through the Dapr Kubernetes secret store), nothing else.
 */
import type { V1Role, V1RoleBinding, V1ServiceAccount } from '@kubernetes/client-node';
import { secretRefsFor, STATE_BACKENDS, type TaskApi } from '../../api/resource.ts';
import { names, ownedMetadata } from '../names.ts';

/** Names of every Secret the TaskApi references, sorted and without duplicates. */
export function referencedSecretNames(taskApi: TaskApi): string[] {
  return [...new Set(secretRefsFor(taskApi.spec, STATE_BACKENDS).map((ref) => ref.name))].sort();
}

export const buildServiceAccount = (taskApi: TaskApi): V1ServiceAccount => ({
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: ownedMetadata(taskApi, names.app(taskApi), 'service-account'),
});

export function buildSecretReaderRole(taskApi: TaskApi): V1Role {
  const secrets = referencedSecretNames(taskApi);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: ownedMetadata(taskApi, names.secretReaderRole(taskApi), 'service-account'),
    rules:
      secrets.length > 0 ? [{ apiGroups: [''], resources: ['secrets'], resourceNames: secrets, verbs: ['get'] }] : [],
  };
}

export const buildSecretReaderRoleBinding = (taskApi: TaskApi): V1RoleBinding => ({
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'RoleBinding',
  metadata: ownedMetadata(taskApi, names.secretReaderRole(taskApi), 'service-account'),
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: names.secretReaderRole(taskApi) },
  subjects: [{ kind: 'ServiceAccount', name: names.app(taskApi), namespace: taskApi.metadata.namespace }],
});
