/**
 * The tokens the operator makes once per TaskApi, each in a Secret it owns:
 * the one it presents to the task pods to drive a swap (src/api/contract.ts:
 * SWAP_ROUTE), read back by a restarted operator; and Dapr's app and API
 * tokens, which only the pods read (through secretKeyRefs and the sidecar
 * injector). Random, never logged, never in status or an Event.
 */
import { randomBytes } from 'node:crypto';
import type { TaskApi } from '../api/resource.ts';
import { isConflict, type KubeClient } from '../kube/client.ts';
import { SECRET_KIND } from '../kube/kinds.ts';
import { buildTokenSecret, TOKEN_KEY, tokenSecretName, type TokenSecret } from './resources/swap.ts';

export class TokenSecrets {
  private readonly tokens = new Map<string, string>();

  /** The TaskApi's token of this kind, creating its Secret the first time. */
  async ensure(kube: KubeClient, taskApi: TaskApi, which: TokenSecret): Promise<string> {
    const { uid, namespace } = taskApi.metadata;
    const known = this.tokens.get(`${uid}/${which}`);
    if (known !== undefined) return known;
    const name = tokenSecretName(taskApi, which);
    const ref = { apiVersion: SECRET_KIND.apiVersion, kind: SECRET_KIND.kind, metadata: { namespace, name } };
    let secret = await kube.get<{ data?: Record<string, string> }>(ref);
    if (!secret?.data?.[TOKEN_KEY]) {
      try {
        await kube.create(buildTokenSecret(taskApi, which, randomBytes(32).toString('hex')));
      } catch (error) {
        // Another replica of the operator made it first: read theirs.
        if (!isConflict(error)) throw error;
      }
      secret = await kube.get<{ data?: Record<string, string> }>(ref);
    }
    const encoded = secret?.data?.[TOKEN_KEY];
    if (encoded === undefined) throw new Error(`Secret ${namespace}/${name} has no ${TOKEN_KEY}`);
    const token = Buffer.from(encoded, 'base64').toString('utf8');
    this.tokens.set(`${uid}/${which}`, token);
    return token;
  }
}
