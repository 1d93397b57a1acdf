/**
 * The token the operator presents to a TaskApi's task pods to drive a swap
 * (src/api/contract.ts: SWAP_ROUTE): random, made once per TaskApi into a
 * Secret it owns (the pods get it through a secretKeyRef), read back by a
 * restarted operator. Never logged, never in status or an Event.
 */
import { randomBytes } from 'node:crypto';
import type { TaskApi } from '../api/resource.ts';
import { isConflict, type KubeClient } from '../kube/client.ts';
import { SECRET_KIND } from '../kube/kinds.ts';
import { names } from './names.ts';
import { buildSwapControlSecret, SWAP_CONTROL_KEY } from './resources/swap.ts';

export class ControlTokens {
  private readonly tokens = new Map<string, string>();

  /** The TaskApi's token, creating its Secret the first time. */
  async ensure(kube: KubeClient, taskApi: TaskApi): Promise<string> {
    const { uid, namespace } = taskApi.metadata;
    const known = this.tokens.get(uid);
    if (known !== undefined) return known;
    const ref = {
      apiVersion: SECRET_KIND.apiVersion,
      kind: SECRET_KIND.kind,
      metadata: { namespace, name: names.swapControl(taskApi) },
    };
    let secret = await kube.get<{ data?: Record<string, string> }>(ref);
    if (!secret?.data?.[SWAP_CONTROL_KEY]) {
      try {
        await kube.create(buildSwapControlSecret(taskApi, randomBytes(32).toString('hex')));
      } catch (error) {
        // Another replica of the operator made it first: read theirs.
        if (!isConflict(error)) throw error;
      }
      secret = await kube.get<{ data?: Record<string, string> }>(ref);
    }
    const encoded = secret?.data?.[SWAP_CONTROL_KEY];
    if (encoded === undefined)
      throw new Error(`Secret ${namespace}/${names.swapControl(taskApi)} has no ${SWAP_CONTROL_KEY}`);
    const token = Buffer.from(encoded, 'base64').toString('utf8');
    this.tokens.set(uid, token);
    return token;
  }

  forget(uid: string): void {
    this.tokens.delete(uid);
  }
}
