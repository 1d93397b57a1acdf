/** The OpenAPI document, generated from the routes' zod schemas and served at /openapi.json. */
import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

/**
 * A route's schema key for a body a request may leave out (the status
 * change's `?status=` form): @fastify/swagger marks every body required.
 */
export const OPTIONAL_BODY = 'x-optional-body';

interface Operation {
  [OPTIONAL_BODY]?: boolean;
  requestBody?: { required?: boolean };
  responses?: Record<string, { content?: unknown }>;
}

/** What @fastify/swagger writes that the routes do not do: a required body where it is optional, a body on a 204. */
function asServed(
  document: ReturnType<typeof jsonSchemaTransformObject>,
): ReturnType<typeof jsonSchemaTransformObject> {
  const paths = (document as { paths?: Record<string, Record<string, Operation>> }).paths ?? {};
  for (const operation of Object.values(paths).flatMap((methods) => Object.values(methods))) {
    if (operation[OPTIONAL_BODY] && operation.requestBody) operation.requestBody.required = false;
    Reflect.deleteProperty(operation, OPTIONAL_BODY);
    if (operation.responses?.['204']) delete operation.responses['204'].content;
  }
  return document;
}

async function openapi(fastify: FastifyInstance, options: { title: string; description: string }): Promise<void> {
  await fastify.register(swagger, {
    openapi: {
      info: { title: options.title, description: options.description, version: '1.0.0' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: jsonSchemaTransform,
    transformObject: (document) => asServed(jsonSchemaTransformObject(document)),
  });
  fastify.get('/openapi.json', { schema: { hide: true } }, () => fastify.swagger());
}

export default fp(openapi, { name: 'openapi' });
