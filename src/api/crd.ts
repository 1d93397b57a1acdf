/**
 * The TaskApi CustomResourceDefinition, generated from the zod schema in
 * taskapi.ts. crds/ holds its checked-in rendering (npm run generate); a unit
 * test fails when the two drift.
 */
import { z } from 'zod';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from './resource.ts';
import { rootRules, specSchema, statusSchema } from './taskapi.ts';

type JsonSchema = Record<string, unknown>;

/** zod's JSON Schema for `schema`, reshaped into a Kubernetes structural schema. */
export function structuralSchema(schema: z.ZodType): JsonSchema {
  return toStructural(z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input' }));
}

// zod adds JavaScript's safe-integer range to every .int(); Kubernetes needs no such bound.
const SAFE_INTEGER_BOUNDS = new Set([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]);

function toStructural(node: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$schema') continue;
    // Structural schemas prune unknown fields already; `additionalProperties: false` is not allowed.
    if (key === 'additionalProperties' && value === false) continue;
    if ((key === 'minimum' || key === 'maximum') && SAFE_INTEGER_BOUNDS.has(value as number)) continue;
    if (key === 'properties') {
      out[key] = Object.fromEntries(
        Object.entries(value as Record<string, JsonSchema>).map(([name, child]) => [name, toStructural(child)]),
      );
    } else if (key === 'items' || key === 'additionalProperties') {
      out[key] = toStructural(value as JsonSchema);
    } else {
      out[key] = value;
    }
  }
  if (out['x-kubernetes-int-or-string'] === true) return intOrString(out);
  return out;
}

/** Kubernetes' own int-or-string shape: typeless branches, the string pattern at the top. */
function intOrString(node: JsonSchema): JsonSchema {
  const branches = (node['anyOf'] ?? []) as JsonSchema[];
  const pattern = branches.find((branch) => branch['type'] === 'string')?.['pattern'];
  const rest = { ...node };
  delete rest['anyOf'];
  return { ...rest, anyOf: [{ type: 'integer' }, { type: 'string' }], ...(pattern ? { pattern } : {}) };
}

export function buildCrd(): JsonSchema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${PLURAL}.${GROUP}` },
    spec: {
      group: GROUP,
      names: { kind: KIND, listKind: `${KIND}List`, plural: PLURAL, singular: KIND.toLowerCase(), shortNames: ['ta'] },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            {
              name: 'Backend',
              type: 'string',
              jsonPath: '.status.stateBackend',
              description: 'State store the running pods use',
            },
            { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
            { name: 'Replicas', type: 'string', jsonPath: '.status.replicaSummary', description: 'ready/desired pods' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
            {
              name: 'Swap',
              type: 'string',
              jsonPath: '.status.swap.phase',
              priority: 1,
              description: 'Phase of a state store swap',
            },
            {
              name: 'Copied',
              type: 'string',
              jsonPath: '.status.swap.progress',
              priority: 1,
              description: 'Tasks copied/total during a swap',
            },
            {
              name: 'Message',
              type: 'string',
              jsonPath: '.status.conditions[?(@.type=="Ready")].message',
              priority: 1,
            },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: `${KIND} (${API_VERSION}) runs a Dapr-enabled task service whose state store is Redis or PostgreSQL.`,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: structuralSchema(specSchema),
                status: structuralSchema(statusSchema),
              },
              ...rootRules,
            },
          },
        },
      ],
    },
  };
}
