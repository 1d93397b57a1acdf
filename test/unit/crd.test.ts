import { describe, expect, it } from 'vitest';
import { buildCrd } from '../../src/api/crd.ts';

interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: unknown;
  anyOf?: Schema[];
}

/** Paths of properties in `schema` that carry no description. */
function undocumented(schema: Schema, path: string): string[] {
  const missing = schema.description ? [] : [path];
  const children = Object.entries(schema.properties ?? {}).flatMap(([name, child]) =>
    undocumented(child, `${path}.${name}`),
  );
  return [...missing, ...children, ...(schema.items ? undocumented(schema.items, `${path}[]`) : [])];
}

function allNodes(schema: Schema): Schema[] {
  return [
    schema,
    ...Object.values(schema.properties ?? {}).flatMap(allNodes),
    ...(schema.items ? allNodes(schema.items) : []),
  ];
}

const openApiSchema = (): Schema =>
  (buildCrd() as { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } }).spec.versions[0]?.schema
    .openAPIV3Schema ?? {};

describe('the TaskApi CRD', () => {
  it('documents every spec field, so `kubectl explain taskapi.spec` explains each one', () => {
    const spec = openApiSchema().properties?.['spec'];
    expect(spec).toBeDefined();
    expect(undocumented(spec ?? {}, 'spec')).toEqual([]);
  });

  it('is a structural schema: every node typed, no additionalProperties: false, int-or-string in Kubernetes form', () => {
    for (const node of allNodes(openApiSchema())) {
      expect(node.additionalProperties).not.toBe(false);
      if (node.anyOf) {
        expect(node.anyOf).toEqual([{ type: 'integer' }, { type: 'string' }]);
      } else {
        expect(node.type).toBeDefined();
      }
    }
  });
});
