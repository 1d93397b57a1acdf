/**
 * The kinds the TaskApi controller reads and writes. Owned kinds are watched,
 * applied and pruned; permissions.ts derives RBAC from this list.
 */
import { GROUP, KIND, PLURAL, VERSION } from '../api/resource.ts';
import { defineKind, KindRegistry, type KindInfo } from '../kube/kinds.ts';

/** Every kind a TaskApi owns; the operator watches and prunes exactly these. */
export const CHILD_KINDS: readonly KindInfo[] = [
  defineKind('apps', 'v1', 'Deployment', 'deployments'),
  defineKind('', 'v1', 'Service', 'services'),
  defineKind('', 'v1', 'ServiceAccount', 'serviceaccounts'),
  defineKind('', 'v1', 'ConfigMap', 'configmaps'),
  defineKind('rbac.authorization.k8s.io', 'v1', 'Role', 'roles'),
  defineKind('rbac.authorization.k8s.io', 'v1', 'RoleBinding', 'rolebindings'),
  defineKind('dapr.io', 'v1alpha1', 'Component', 'components'),
  defineKind('dapr.io', 'v2alpha1', 'Subscription', 'subscriptions'),
];

export const TASKAPI_KIND = defineKind(GROUP, VERSION, KIND, PLURAL);

/** What the operator's client may touch: TaskApis, their children, and the core kinds. */
export const KINDS = new KindRegistry([...CHILD_KINDS, TASKAPI_KIND]);
