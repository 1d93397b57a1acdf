/**
 * The least privilege the operator needs, derived from what the code touches:
 * owned kinds (from CHILD_KINDS) are watched, applied and pruned; TaskApis are
 * watched and their status written; Secrets are read (preflight, key names) and
 * three per TaskApi are created (the swap control token, Dapr's app and API
 * tokens), never changed, listed or deleted; task pods are listed, and the
 * previous log of a restarting daprd read;
 * Events are created. Rendered into config/rbac by `npm run generate`.
 */
import { GROUP, PLURAL } from '../api/resource.ts';
import { CHILD_KINDS } from './kinds.ts';

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

export function clusterRules(): PolicyRule[] {
  const owned = new Map<string, string[]>();
  for (const info of CHILD_KINDS) {
    owned.set(info.group, [...(owned.get(info.group) ?? []), info.plural]);
  }
  return [
    { apiGroups: [GROUP], resources: [PLURAL], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [GROUP], resources: [`${PLURAL}/status`], verbs: ['get', 'patch'] },
    // Owner references with blockOwnerDeletion need update on the owner's finalizers.
    { apiGroups: [GROUP], resources: [`${PLURAL}/finalizers`], verbs: ['update'] },
    ...[...owned].map(([group, resources]) => ({
      apiGroups: [group],
      resources: [...new Set(resources)].sort(),
      // Server-side apply creates or patches; pruning deletes.
      verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
    })),
    // Read: preflight's key names, and the tokens it made. Create: each token's Secret, once.
    { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create'] },
    // A swap reaches every running task pod: a fresh list, never a watch.
    { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
    // While pods are missing, a restarting sidecar's last log names the Component it failed on.
    { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ];
}

/** Namespaced, in the operator's own namespace: the leader election Lease. */
export const LEADER_ELECTION_RULES: PolicyRule[] = [
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
];
