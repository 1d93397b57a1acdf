/**
 * What a swap of state stores needs in the cluster (docs/swap.md): the
 * ConfigMap holding the plan task pods start from, mounted into them, and the
 * Secret with the token the operator presents to drive them.
 */
import type { SwapPlan } from '../../api/contract.ts';
import type { TaskApi } from '../../api/resource.ts';
import { names, ownedMetadata, type OwnedMetadata } from '../names.ts';

/** Where the plan ConfigMap is mounted in the task container, and its one key. */
export const SWAP_PLAN_DIR = '/etc/taskapi/swap';
export const SWAP_PLAN_KEY = 'plan.json';
/** The key of every token Secret (Dapr reads its own tokens there). */
export const TOKEN_KEY = 'token';

export interface ConfigMapManifest {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  metadata: OwnedMetadata;
  data: Record<string, string>;
}

export function buildSwapPlanConfigMap(taskApi: TaskApi, plan: SwapPlan): ConfigMapManifest {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: ownedMetadata(taskApi, names.swapPlan(taskApi), 'swap-plan'),
    data: { [SWAP_PLAN_KEY]: JSON.stringify(plan) },
  };
}

export interface SecretManifest {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: OwnedMetadata;
  type: 'Opaque';
  stringData: Record<string, string>;
}

/** The Secrets holding a random token the operator makes once per TaskApi; Dapr reads its tokens under `token`. */
export type TokenSecret = 'swap-control' | 'dapr-app-token' | 'dapr-api-token';

export const tokenSecretName = (taskApi: TaskApi, which: TokenSecret): string =>
  ({ 'swap-control': names.swapControl, 'dapr-app-token': names.daprAppToken, 'dapr-api-token': names.daprApiToken })[
    which
  ](taskApi);

/** Created once (never applied again: the token must not change under running pods). */
export function buildTokenSecret(taskApi: TaskApi, which: TokenSecret, token: string): SecretManifest {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: ownedMetadata(taskApi, tokenSecretName(taskApi, which), which),
    type: 'Opaque',
    stringData: { [TOKEN_KEY]: token },
  };
}
