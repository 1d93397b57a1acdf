/** The OpenAPI document, generated from the routes' zod schemas and served at /openapi.json. */
import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

async function openapi(fastify: FastifyInstance, options: { title: string; description: string }): Promise<void> {
  await fastify.register(swagger, {
    openapi: {
      info: { title: options.title, description: options.description, version: '1.0.0' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  fastify.get('/openapi.json', { schema: { hide: true } }, () => fastify.swagger());
}

export default fp(openapi, { name: 'openapi' });
