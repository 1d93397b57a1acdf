/**
 * Kinds and their REST paths. A client handles the kinds it is given (a
 * KindRegistry) plus the core ones every controller uses: Secrets, Events,
 * Leases.
 */

export interface KindInfo {
  /** '' for the core group. */
  group: string;
  version: string;
  /** `group/version`, or `version` for the core group. */
  apiVersion: string;
  kind: string;
  plural: string;
}

export const defineKind = (group: string, version: string, kind: string, plural: string): KindInfo => ({
  group,
  version,
  apiVersion: group ? `${group}/${version}` : version,
  kind,
  plural,
});

export const SECRET_KIND = defineKind('', 'v1', 'Secret', 'secrets');
export const EVENT_KIND = defineKind('', 'v1', 'Event', 'events');
export const LEASE_KIND = defineKind('coordination.k8s.io', 'v1', 'Lease', 'leases');
export const POD_KIND = defineKind('', 'v1', 'Pod', 'pods');

/** The kinds a client may touch, found by an object's apiVersion and kind. */
export class KindRegistry {
  private readonly known: Map<string, KindInfo>;

  constructor(kinds: readonly KindInfo[]) {
    this.known = new Map(
      [...kinds, SECRET_KIND, EVENT_KIND, LEASE_KIND, POD_KIND].map((info) => [
        `${info.apiVersion}/${info.kind}`,
        info,
      ]),
    );
  }

  /** The kind `object` is; throws for a kind the client was not given. */
  of(object: { apiVersion: string; kind: string }): KindInfo {
    const info = this.known.get(`${object.apiVersion}/${object.kind}`);
    if (!info) throw new Error(`no REST mapping for ${object.apiVersion} ${object.kind}`);
    return info;
  }
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
