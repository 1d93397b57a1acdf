/**
 * The operator's only door to the API server: server-side apply of children and
 * of status (one field manager), deletes, Secret preflight reads and Events,
 * all through @kubernetes/client-node, with API errors turned into typed ones.
 */
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { GROUP, KIND, PLURAL, VERSION, type TaskApi } from '../api/resource.ts';
import type { TaskApiStatus } from '../api/taskapi.ts';
import type { Manifest } from './desired.ts';
import { FIELD_MANAGER } from './names.ts';

/** An API server refusal, with what a log or condition may safely say about it. */
export class KubeApiError extends Error {
  readonly statusCode: number;
  readonly reason: string;
  constructor(operation: string, statusCode: number, reason: string, detail: string) {
    super(`${operation}: ${statusCode} ${reason}${detail ? `: ${detail}` : ''}`);
    this.name = 'KubeApiError';
    this.statusCode = statusCode;
    this.reason = reason;
  }
}

interface StatusBody {
  reason?: string;
  message?: string;
}

/** Wraps client-node's ApiException (whose message carries the raw body) into a KubeApiError. */
export function toKubeApiError(operation: string, error: unknown): unknown {
  if (!(error instanceof ApiException)) return error;
  let body: StatusBody = {};
  try {
    body = (typeof error.body === 'string' ? JSON.parse(error.body) : error.body) as StatusBody;
  } catch {
    // Not a Status object; the code alone has to do.
  }
  return new KubeApiError(operation, error.code, body.reason ?? 'Unknown', body.message ?? '');
}

export const isNotFound = (error: unknown): boolean => error instanceof KubeApiError && error.statusCode === 404;

const statusApplyOptions = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

export class KubeClient {
  private readonly objects: KubernetesObjectApi;
  private readonly core: CoreV1Api;
  private readonly customObjects: CustomObjectsApi;
  /** Writes made, by verb and kind: the benchmark's proof that a no-op resync writes nothing. */
  readonly onWrite: ((verb: string, kind: string) => void)[] = [];

  constructor(config: KubeConfig) {
    this.objects = KubernetesObjectApi.makeApiClient(config);
    this.core = config.makeApiClient(CoreV1Api);
    this.customObjects = config.makeApiClient(CustomObjectsApi);
  }

  private wrote(verb: string, kind: string): void {
    for (const listener of this.onWrite) listener(verb, kind);
  }

  /** Server-side apply as `taskapi-operator`, taking over fields others changed (the spec is the truth). */
  async apply<T extends KubernetesObject>(manifest: Manifest): Promise<T> {
    this.wrote('apply', manifest.kind);
    try {
      return await this.objects.patch<T>(
        manifest as KubernetesObject as T,
        undefined,
        undefined,
        FIELD_MANAGER,
        true,
        PatchStrategy.ServerSideApply,
      );
    } catch (error) {
      throw toKubeApiError(`apply ${manifest.kind} ${manifest.metadata.namespace}/${manifest.metadata.name}`, error);
    }
  }

  async delete(object: { apiVersion: string; kind: string; namespace: string; name: string }): Promise<void> {
    this.wrote('delete', object.kind);
    try {
      await this.objects.delete(
        {
          apiVersion: object.apiVersion,
          kind: object.kind,
          metadata: { name: object.name, namespace: object.namespace },
        },
        undefined,
        undefined,
        undefined,
        undefined,
        'Background',
      );
    } catch (error) {
      const wrapped = toKubeApiError(`delete ${object.kind} ${object.namespace}/${object.name}`, error);
      if (!isNotFound(wrapped)) throw wrapped;
    }
  }

  /** Writes the whole status through the status subresource (server-side apply, so omitted fields go away). */
  async applyStatus(taskApi: TaskApi, status: TaskApiStatus): Promise<void> {
    const { name, namespace } = taskApi.metadata;
    this.wrote('apply-status', KIND);
    try {
      await this.customObjects.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          namespace,
          plural: PLURAL,
          name,
          body: { apiVersion: `${GROUP}/${VERSION}`, kind: KIND, metadata: { name, namespace }, status },
          fieldManager: FIELD_MANAGER,
          force: true,
        },
        statusApplyOptions,
      );
    } catch (error) {
      throw toKubeApiError(`apply status of ${KIND} ${namespace}/${name}`, error);
    }
  }

  /** The key names of a Secret, or undefined when it does not exist. Values are never returned. */
  async secretKeys(namespace: string, name: string): Promise<string[] | undefined> {
    try {
      const secret = await this.core.readNamespacedSecret({ name, namespace });
      return Object.keys({ ...secret.data, ...secret.stringData });
    } catch (error) {
      const wrapped = toKubeApiError(`read Secret ${namespace}/${name}`, error);
      if (isNotFound(wrapped)) return undefined;
      throw wrapped;
    }
  }

  /** Records an Event on a TaskApi; an Event that cannot be written is not worth failing a reconcile for. */
  async recordEvent(taskApi: TaskApi, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const { name, namespace, uid } = taskApi.metadata;
    const now = new Date();
    this.wrote('create', 'Event');
    await this.core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace },
        involvedObject: { apiVersion: `${GROUP}/${VERSION}`, kind: KIND, name, namespace, uid },
        type,
        reason,
        message,
        source: { component: FIELD_MANAGER },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  }
}
