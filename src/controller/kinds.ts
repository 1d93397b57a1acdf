/**
 * The kinds the operator reads and writes, and their REST paths. Owned kinds
 * are watched, applied and pruned; permissions.ts derives RBAC from this list.
 */
import { GROUP, KIND, PLURAL, VERSION } from '../api/resource.ts';

export interface KindInfo {
  /** '' for the core group. */
  group: string;
  version: string;
  /** `group/version`, or `version` for the core group. */
  apiVersion: string;
  kind: string;
  plural: string;
}

const kind = (group: string, version: string, name: string, plural: string): KindInfo => ({
  group,
  version,
  apiVersion: group ? `${group}/${version}` : version,
  kind: name,
  plural,
});

/** Every kind a TaskApi owns; the operator watches and prunes exactly these. */
export const CHILD_KINDS: readonly KindInfo[] = [
  kind('apps', 'v1', 'Deployment', 'deployments'),
  kind('', 'v1', 'Service', 'services'),
  kind('', 'v1', 'ServiceAccount', 'serviceaccounts'),
  kind('rbac.authorization.k8s.io', 'v1', 'Role', 'roles'),
  kind('rbac.authorization.k8s.io', 'v1', 'RoleBinding', 'rolebindings'),
  kind('dapr.io', 'v1alpha1', 'Component', 'components'),
  kind('dapr.io', 'v2alpha1', 'Subscription', 'subscriptions'),
];

export const TASKAPI_KIND = kind(GROUP, VERSION, KIND, PLURAL);
export const SECRET_KIND = kind('', 'v1', 'Secret', 'secrets');
export const EVENT_KIND = kind('', 'v1', 'Event', 'events');
export const LEASE_KIND = kind('coordination.k8s.io', 'v1', 'Lease', 'leases');

const KNOWN = new Map([...CHILD_KINDS, TASKAPI_KIND].map((info) => [`${info.apiVersion}/${info.kind}`, info]));

/** The kind an object is, from its apiVersion and kind; only kinds this operator handles are known. */
export function kindOf(object: { apiVersion: string; kind: string }): KindInfo {
  const info = KNOWN.get(`${object.apiVersion}/${object.kind}`);
  if (!info) throw new Error(`the operator does not handle ${object.apiVersion} ${object.kind}`);
  return info;
}

/**
 * REST path of a collection (all namespaces when `namespace` is undefined), an
 * object, or one of its subresources.
 */
export function resourcePath(info: KindInfo, namespace?: string, name?: string, subresource?: string): string {
  const root = info.group ? `/apis/${info.group}/${info.version}` : `/api/${info.version}`;
  const scope = namespace === undefined ? '' : `/namespaces/${encodeURIComponent(namespace)}`;
  const object = name === undefined ? '' : `/${encodeURIComponent(name)}`;
  return `${root}${scope}/${info.plural}${object}${subresource ? `/${subresource}` : ''}`;
}
