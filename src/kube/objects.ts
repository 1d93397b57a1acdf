/** Objects as the API server sends them, and the identity every cached snapshot keeps. */

export interface RawObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    deletionTimestamp?: string;
    ownerReferences?: { kind: string; name: string; controller?: boolean }[];
    managedFields?: ManagedFieldsEntry[];
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  subresource?: string;
  time?: string;
  fieldsV1?: FieldSet;
}

/** A managedFields field set (fieldsV1): `f:<field>`, `k:<list key>`, `v:<set value>`, `i:<index>`, `.` */
export interface FieldSet {
  [path: string]: FieldSet;
}

/** What an informer's cache holds of an object, at the least. */
export interface Snapshot {
  metadata: { namespace: string; name: string; resourceVersion: string };
}

/** An object to read, write or delete: enough to find its REST path. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  metadata: { namespace: string; name: string };
}

export function identity(raw: RawObject): Snapshot['metadata'] {
  const { namespace = '', name = '', resourceVersion = '' } = raw.metadata ?? {};
  return { namespace, name, resourceVersion };
}
