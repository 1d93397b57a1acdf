/**
 * A controller's door to the API server: server-side apply of objects and of
 * their status under one field manager, reads, creates, replaces and deletes of
 * the kinds it was given, and the list and watch streams informers run on.
 * Every write is reported to `onWrite` listeners (the operator counts them).
 *
 * Written on node:https rather than @kubernetes/client-node on purpose: loading
 * client-node costs about 80 MiB of resident memory before any object is cached
 * (its generated models and their serializers), more than the operator's whole
 * budget of 64 MiB + 20 KiB per TaskApi. A controller needs a handful of REST
 * calls and a watch; each is a few lines here. (client-node stays for its TS
 * types.) test/cluster holds it to the API server's behaviour.
 */
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { resourcePath, type KindRegistry } from './kinds.ts';
import type { Connection } from './kubeconfig.ts';
import { LineDecoder } from './lines.ts';
import { http } from './node-http.ts';
import type { ObjectRef, RawObject } from './objects.ts';

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
export const isConflict = (error: unknown): boolean => error instanceof KubeApiError && error.statusCode === 409;

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
const parseJson = (text: string): unknown => (text ? JSON.parse(text) : undefined);
const REQUEST_TIMEOUT_MS = 30_000;
/** Connections for requests; more wait their turn (each TLS connection holds memory). */
const MAX_SOCKETS = 32;

/** Times are RFC 3339 to the second, as metav1.Time serializes them. */
export const rfc3339 = (date: Date): string => date.toISOString().replace(/\.\d+Z$/, 'Z');

export interface ClientOptions {
  /** The field manager of every server-side apply. */
  fieldManager: string;
  /** The kinds this client may touch (besides Secrets, Events and Leases). */
  kinds: KindRegistry;
  /** Sent on every request, as client-go sends `<program>/<version> (<os>/<arch>) ...`. */
  userAgent: string;
}

export class KubeClient {
  private readonly connection: Connection;
  private readonly options: ClientOptions;
  /** The server's host, port and path prefix, parsed once: a URL object per request cost more than the request. */
  private readonly target: { host: string; port: number; prefix: string };
  private readonly request: typeof httpsRequest;
  private readonly agent: HttpAgent;
  /** Watches hold their connection for minutes; they get their own pool so requests never queue behind them. */
  private readonly watchAgent: HttpAgent;
  /** Writes made, by verb and kind: the benchmark's proof that a no-op resync writes nothing. */
  readonly onWrite: ((verb: string, kind: string) => void)[] = [];

  constructor(connection: Connection, options: ClientOptions) {
    this.connection = connection;
    this.options = options;
    const server = new URL(connection.server);
    const tls = server.protocol === 'https:';
    this.target = {
      host: server.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(server.port) || (tls ? 443 : 80),
      prefix: server.pathname.replace(/\/+$/, ''),
    };
    const tlsOptions = {
      keepAlive: true,
      ca: connection.ca,
      cert: connection.clientCertificate,
      key: connection.clientKey,
      rejectUnauthorized: !connection.insecureSkipTlsVerify,
      ...(connection.tlsServerName ? { servername: connection.tlsServerName } : {}),
    };
    this.request = tls ? httpsRequest : http.request;
    this.agent = tls
      ? new HttpsAgent({ ...tlsOptions, maxSockets: MAX_SOCKETS })
      : new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });
    this.watchAgent = tls ? new HttpsAgent(tlsOptions) : new http.Agent({ keepAlive: true });
  }

  get namespace(): string | undefined {
    return this.connection.namespace;
  }

  private wrote(verb: string, kind: string): void {
    for (const listener of this.onWrite) listener(verb, kind);
  }

  private open(
    token: string | undefined,
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
    const outgoing = this.request(
      {
        host: this.target.host,
        port: this.target.port,
        path: this.target.prefix + path + search,
        method,
        agent,
        headers: {
          accept: 'application/json',
          'user-agent': this.options.userAgent,
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

  /**
   * Runs `start` with the bearer token to send: at once for a static or file
   * token, after the exec plugin (or its cached token) for one from a plugin.
   */
  private withToken<T>(start: (token: string | undefined) => T, onError: (error: Error) => void): T | undefined {
    const token = this.connection.token();
    if (!(token instanceof Promise)) return start(token);
    token.then(start, (error: unknown) => {
      onError(error instanceof Error ? error : new Error(String(error)));
    });
    return undefined;
  }

  /** One request; resolves with the parsed body, or throws a KubeApiError naming `operation`. */
  send<T>(
    operation: string,
    method: string,
    path: string,
    query: Query = {},
    body?: unknown,
    contentType?: string,
    decode: (text: string) => T = parseJson as (text: string) => T,
  ): Promise<T> {
    const token = this.connection.token();
    return token instanceof Promise
      ? token.then((value) => this.exchange<T>(value, operation, method, path, query, body, contentType, decode))
      : this.exchange<T>(token, operation, method, path, query, body, contentType, decode);
  }

  /** A GET whose answer is text, not JSON: a container's log. */
  text(operation: string, path: string, query: Query): Promise<string> {
    return this.send<string>(operation, 'GET', path, query, undefined, undefined, (text) => text);
  }

  private exchange<T>(
    token: string | undefined,
    operation: string,
    method: string,
    path: string,
    query: Query,
    body: unknown,
    contentType: string | undefined,
    decode: (text: string) => T,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // Set once the request is open; every way out clears it, failures included.
      const deadline: { timer?: NodeJS.Timeout } = {};
      const fail = (error: Error) => {
        clearTimeout(deadline.timer);
        reject(error instanceof KubeApiError ? error : new Error(`${operation}: ${error.message}`, { cause: error }));
      };
      const abort = this.open(
        token,
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
            clearTimeout(deadline.timer);
            const text = Buffer.concat(chunks).toString('utf8');
            const code = response.statusCode ?? 0;
            if (code >= 400) {
              fail(statusError(operation, code, text));
              return;
            }
            try {
              resolve(decode(text));
            } catch (error) {
              fail(error as Error);
            }
          });
        },
        fail,
      );
      deadline.timer = setTimeout(() => {
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
      const start = (token: string | undefined): void => {
        if (stopped) {
          resolve();
          return;
        }
        abort = this.open(
          token,
          'GET',
          path,
          { ...query, watch: true },
          this.watchAgent,
          undefined,
          undefined,
          (response) => {
            const code = response.statusCode ?? 0;
            const chunks: Buffer[] = [];
            const lines = new LineDecoder();
            response.on('data', (chunk: Buffer) => {
              if (code >= 400) {
                chunks.push(chunk);
                return;
              }
              for (const line of lines.push(chunk)) {
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
            });
            response.on('error', fail);
            response.on('end', () => {
              if (code >= 400) fail(statusError(operation, code, Buffer.concat(chunks).toString('utf8')));
              else resolve();
            });
          },
          fail,
        );
      };
      this.withToken(start, fail);
    });
    return {
      done,
      stop: () => {
        stopped = true;
        abort();
      },
    };
  }

  /** Server-side apply as this client's field manager, taking over fields others changed (the caller's copy is the truth). */
  async apply(object: ObjectRef): Promise<RawObject> {
    const { namespace, name } = object.metadata;
    this.wrote('apply', object.kind);
    return this.send<RawObject>(
      `apply ${object.kind} ${namespace}/${name}`,
      'PATCH',
      resourcePath(this.options.kinds.of(object), namespace, name),
      { fieldManager: this.options.fieldManager, force: true },
      object,
      APPLY_PATCH,
    );
  }

  /** Writes `status` whole through the status subresource (server-side apply, so omitted fields go away). */
  /**
   * Applies the status subresource. With `resourceVersion`, only onto that
   * version of the object: the API server answers 409 (isConflict) when it
   * changed since, so a status computed from an older copy never lands.
   */
  async applyStatus(object: ObjectRef, status: unknown, resourceVersion?: string): Promise<void> {
    const { apiVersion, kind, metadata } = object;
    const { name, namespace } = metadata;
    this.wrote('apply-status', kind);
    await this.send(
      `apply status of ${kind} ${namespace}/${name}`,
      'PATCH',
      resourcePath(this.options.kinds.of(object), namespace, name, 'status'),
      { fieldManager: this.options.fieldManager, force: true },
      { apiVersion, kind, metadata: { name, namespace, ...(resourceVersion ? { resourceVersion } : {}) }, status },
      APPLY_PATCH,
    );
  }

  /** Reads an object as it stands; undefined when it does not exist. */
  async get<T = RawObject>(object: ObjectRef): Promise<T | undefined> {
    const { namespace, name } = object.metadata;
    try {
      return await this.send<T>(
        `read ${object.kind} ${namespace}/${name}`,
        'GET',
        resourcePath(this.options.kinds.of(object), namespace, name),
      );
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Creates an object (409 when it exists). */
  async create<T extends ObjectRef>(object: T): Promise<T> {
    const { namespace, name } = object.metadata;
    this.wrote('create', object.kind);
    return this.send<T>(
      `create ${object.kind} ${namespace}/${name}`,
      'POST',
      resourcePath(this.options.kinds.of(object), namespace),
      {},
      object,
    );
  }

  /** Replaces an object whole; its resourceVersion makes it conditional (409 when the object changed since). */
  async replace<T extends ObjectRef>(object: T): Promise<T> {
    const { namespace, name } = object.metadata;
    this.wrote('update', object.kind);
    return this.send<T>(
      `update ${object.kind} ${namespace}/${name}`,
      'PUT',
      resourcePath(this.options.kinds.of(object), namespace, name),
      {},
      object,
    );
  }

  /** Deletes an object; one already gone counts as deleted. Dependents go in the background (the garbage collector). */
  async delete(object: ObjectRef): Promise<void> {
    const { namespace, name } = object.metadata;
    this.wrote('delete', object.kind);
    try {
      await this.send(
        `delete ${object.kind} ${namespace}/${name}`,
        'DELETE',
        resourcePath(this.options.kinds.of(object), namespace, name),
        { propagationPolicy: 'Background' },
      );
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** Closes idle connections so the process can exit. */
  close(): void {
    this.agent.destroy();
    this.watchAgent.destroy();
  }
}
