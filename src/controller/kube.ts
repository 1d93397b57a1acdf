/**
 * The operator's only door to the API server: server-side apply of children and
 * of status (one field manager), deletes, Secret key reads, Events, Leases, and
 * the list and watch streams the informers run on.
 *
 * Written on node:https rather than @kubernetes/client-node on purpose: loading
 * client-node costs about 80 MiB of resident memory before any object is cached
 * (its generated models and their serializers), more than the operator's whole
 * budget of 64 MiB + 20 KiB per TaskApi. The operator needs eight REST calls and
 * a watch; each is a few lines here. (client-node stays for its TS types.)
 */
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { randomBytes } from 'node:crypto';
import { KIND, type TaskApi } from '../api/resource.ts';
import type { TaskApiStatus } from '../api/taskapi.ts';
import type { Manifest } from './desired.ts';
import { EVENT_KIND, kindOf, resourcePath, SECRET_KIND, TASKAPI_KIND } from './kinds.ts';
import type { Connection } from './kubeconfig.ts';
import { http } from './node-http.ts';
import { FIELD_MANAGER } from './names.ts';
import type { RawObject } from './snapshot.ts';

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

export const isNotFound = (error: unknown): boolean => error instanceof KubeApiError && error.statusCode === 404;

/** A Kubernetes Status body (what error responses and watch ERROR events carry). */
interface StatusBody {
  code?: number;
  reason?: string;
  message?: string;
}

export function statusError(operation: string, statusCode: number, body: string | StatusBody): KubeApiError {
  let status: StatusBody = {};
  if (typeof body === 'string') {
    try {
      status = JSON.parse(body) as StatusBody;
    } catch {
      // Not a Status object (a proxy's error page, say); the code alone has to do.
    }
  } else {
    status = body;
  }
  return new KubeApiError(operation, status.code ?? statusCode, status.reason ?? 'Unknown', status.message ?? '');
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: RawObject & StatusBody;
}

/** A running watch: `done` settles when the server ends the stream or it fails; `stop()` ends it early. */
export interface WatchStream {
  done: Promise<void>;
  stop(): void;
}

export interface ListPage {
  metadata: { resourceVersion: string; continue?: string };
  items: RawObject[];
}

type Query = Record<string, string | number | boolean | undefined>;

const APPLY_PATCH = 'application/apply-patch+yaml';
const REQUEST_TIMEOUT_MS = 30_000;
/** Connections for requests; more wait their turn (each TLS connection holds memory). */
const MAX_SOCKETS = 32;

/** Times are RFC 3339 to the second, as metav1.Time serializes them. */
export const rfc3339 = (date: Date): string => date.toISOString().replace(/\.\d+Z$/, 'Z');

export class KubeClient {
  private readonly connection: Connection;
  /** The server's host, port and path prefix, parsed once: a URL object per request cost more than the request. */
  private readonly target: { host: string; port: number; prefix: string };
  private readonly request: typeof httpsRequest;
  private readonly agent: HttpAgent;
  /** Watches hold their connection for minutes; they get their own pool so requests never queue behind them. */
  private readonly watchAgent: HttpAgent;
  /** Writes made, by verb and kind: the benchmark's proof that a no-op resync writes nothing. */
  readonly onWrite: ((verb: string, kind: string) => void)[] = [];

  constructor(connection: Connection) {
    this.connection = connection;
    const server = new URL(connection.server);
    const tls = server.protocol === 'https:';
    this.target = {
      host: server.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(server.port) || (tls ? 443 : 80),
      prefix: server.pathname.replace(/\/+$/, ''),
    };
    const options = {
      keepAlive: true,
      ca: connection.ca,
      cert: connection.clientCertificate,
      key: connection.clientKey,
      rejectUnauthorized: !connection.insecureSkipTlsVerify,
    };
    this.request = tls ? httpsRequest : http.request;
    this.agent = tls
      ? new HttpsAgent({ ...options, maxSockets: MAX_SOCKETS })
      : new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });
    this.watchAgent = tls ? new HttpsAgent(options) : new http.Agent({ keepAlive: true });
  }

  get namespace(): string | undefined {
    return this.connection.namespace;
  }

  private wrote(verb: string, kind: string): void {
    for (const listener of this.onWrite) listener(verb, kind);
  }

  private open(
    method: string,
    path: string,
    query: Query,
    agent: HttpAgent,
    contentType: string | undefined,
    body: string | undefined,
    onResponse: (response: IncomingMessage) => void,
    onError: (error: Error) => void,
  ): () => void {
    let search = '';
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined) search += `${search ? '&' : '?'}${name}=${encodeURIComponent(String(value))}`;
    }
    const token = this.connection.token();
    const outgoing = this.request(
      {
        host: this.target.host,
        port: this.target.port,
        path: this.target.prefix + path + search,
        method,
        agent,
        headers: {
          accept: 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(contentType ? { 'content-type': contentType } : {}),
        },
      },
      onResponse,
    );
    outgoing.on('error', onError);
    outgoing.end(body);
    return () => outgoing.destroy();
  }

  /** One request; resolves with the parsed body, or throws a KubeApiError naming `operation`. */
  send<T>(
    operation: string,
    method: string,
    path: string,
    query: Query = {},
    body?: unknown,
    contentType?: string,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const fail = (error: Error) => {
        reject(error instanceof KubeApiError ? error : new Error(`${operation}: ${error.message}`, { cause: error }));
      };
      const abort = this.open(
        method,
        path,
        query,
        this.agent,
        body === undefined ? undefined : (contentType ?? 'application/json'),
        body === undefined ? undefined : JSON.stringify(body),
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', fail);
          response.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            const code = response.statusCode ?? 0;
            if (code >= 400) {
              fail(statusError(operation, code, text));
              return;
            }
            try {
              resolve((text ? JSON.parse(text) : undefined) as T);
            } catch (error) {
              fail(error as Error);
            }
          });
        },
        fail,
      );
      const timer = setTimeout(() => {
        abort();
        fail(new Error(`no answer in ${REQUEST_TIMEOUT_MS / 1000}s`));
      }, REQUEST_TIMEOUT_MS);
    });
  }

  /** One page of a list; pages keep memory flat while a large collection streams in. */
  list(operation: string, path: string, query: Query): Promise<ListPage> {
    return this.send<ListPage>(operation, 'GET', path, query);
  }

  /**
   * Watches `path` from `resourceVersion`, calling `onEvent` for each event line.
   * The server closes the stream after `timeoutSeconds`; the caller watches again.
   */
  watch(operation: string, path: string, query: Query, onEvent: (event: WatchEvent) => void): WatchStream {
    let abort = (): void => undefined;
    let stopped = false;
    const done = new Promise<void>((resolve, reject) => {
      const fail = (error: Error) => {
        if (stopped) resolve();
        else
          reject(error instanceof KubeApiError ? error : new Error(`${operation}: ${error.message}`, { cause: error }));
      };
      abort = this.open(
        'GET',
        path,
        { ...query, watch: true },
        this.watchAgent,
        undefined,
        undefined,
        (response) => {
          const code = response.statusCode ?? 0;
          const chunks: Buffer[] = [];
          let pending = '';
          response.on('data', (chunk: Buffer) => {
            if (code >= 400) {
              chunks.push(chunk);
              return;
            }
            pending += chunk.toString('utf8');
            let newline = pending.indexOf('\n');
            while (newline >= 0) {
              const line = pending.slice(0, newline);
              pending = pending.slice(newline + 1);
              if (line.trim()) {
                try {
                  onEvent(JSON.parse(line) as WatchEvent);
                } catch (error) {
                  // The handler's own error (an expired version, say) is what the caller must see.
                  reject(error instanceof Error ? error : new Error(String(error)));
                  stopped = true;
                  abort();
                  return;
                }
              }
              newline = pending.indexOf('\n');
            }
          });
          response.on('error', fail);
          response.on('end', () => {
            if (code >= 400) fail(statusError(operation, code, Buffer.concat(chunks).toString('utf8')));
            else resolve();
          });
        },
        fail,
      );
    });
    return {
      done,
      stop: () => {
        stopped = true;
        abort();
      },
    };
  }

  /** Server-side apply as `taskapi-operator`, taking over fields others changed (the spec is the truth). */
  async apply(manifest: Manifest): Promise<RawObject> {
    const { namespace, name } = manifest.metadata;
    this.wrote('apply', manifest.kind);
    return this.send<RawObject>(
      `apply ${manifest.kind} ${namespace}/${name}`,
      'PATCH',
      resourcePath(kindOf(manifest), namespace, name),
      { fieldManager: FIELD_MANAGER, force: true },
      manifest,
      APPLY_PATCH,
    );
  }

  /** Reads an object as it stands; undefined when it does not exist. */
  async get(object: {
    apiVersion: string;
    kind: string;
    metadata: { namespace: string; name: string };
  }): Promise<RawObject | undefined> {
    const { namespace, name } = object.metadata;
    try {
      return await this.send<RawObject>(
        `read ${object.kind} ${namespace}/${name}`,
        'GET',
        resourcePath(kindOf(object), namespace, name),
      );
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Deletes an object; one already gone counts as deleted. Dependents go in the background (the garbage collector). */
  async delete(object: { apiVersion: string; kind: string; namespace: string; name: string }): Promise<void> {
    this.wrote('delete', object.kind);
    try {
      await this.send(
        `delete ${object.kind} ${object.namespace}/${object.name}`,
        'DELETE',
        resourcePath(kindOf(object), object.namespace, object.name),
        { propagationPolicy: 'Background' },
      );
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** Writes the whole status through the status subresource (server-side apply, so omitted fields go away). */
  async applyStatus(taskApi: TaskApi, status: TaskApiStatus): Promise<void> {
    const { name, namespace } = taskApi.metadata;
    this.wrote('apply-status', KIND);
    await this.send(
      `apply status of ${KIND} ${namespace}/${name}`,
      'PATCH',
      resourcePath(TASKAPI_KIND, namespace, name, 'status'),
      { fieldManager: FIELD_MANAGER, force: true },
      { apiVersion: TASKAPI_KIND.apiVersion, kind: KIND, metadata: { name, namespace }, status },
      APPLY_PATCH,
    );
  }

  /** The key names of a Secret, or undefined when it does not exist. Values are never returned. */
  async secretKeys(namespace: string, name: string): Promise<string[] | undefined> {
    try {
      const secret = await this.send<{ data?: Record<string, string> }>(
        `read Secret ${namespace}/${name}`,
        'GET',
        resourcePath(SECRET_KIND, namespace, name),
      );
      return Object.keys(secret.data ?? {});
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Records an Event on a TaskApi. */
  async recordEvent(taskApi: TaskApi, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const { name, namespace, uid } = taskApi.metadata;
    const now = rfc3339(new Date());
    this.wrote('create', 'Event');
    await this.send(
      `record Event on ${KIND} ${namespace}/${name}`,
      'POST',
      resourcePath(EVENT_KIND, namespace),
      {},
      {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace },
        involvedObject: { apiVersion: TASKAPI_KIND.apiVersion, kind: KIND, name, namespace, uid },
        type,
        reason,
        message,
        source: { component: FIELD_MANAGER },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    );
  }

  /** Closes idle connections so the process can exit. */
  close(): void {
    this.agent.destroy();
    this.watchAgent.destroy();
  }
}
