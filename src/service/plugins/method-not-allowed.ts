/**
 * 405 with `Allow` for a method a path does not have (RFC 9110 §15.5.6);
 * Fastify's own answer would be 404, as if the path did not exist. Routes are
 * recorded as they are added; a request no route took is matched against their
 * paths, and only a path no route has is a 404.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { ErrorBody } from '../schemas/task.ts';

interface KnownPath {
  pattern: RegExp;
  methods: Set<string>;
}

/** `/tasks/:id/status` → /^\/tasks\/[^/]+\/status$/ (Fastify's parameters are whole segments here). */
function patternOf(url: string): RegExp {
  const escaped = url
    .split('/')
    .map((segment) => (segment.startsWith(':') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${escaped}/?$`);
}

function methodNotAllowed(fastify: FastifyInstance, _options: unknown, done: () => void): void {
  const paths = new Map<string, KnownPath>();
  fastify.addHook('onRoute', (route) => {
    const known = paths.get(route.url) ?? { pattern: patternOf(route.url), methods: new Set<string>() };
    for (const method of [route.method].flat()) known.methods.add(method.toUpperCase());
    paths.set(route.url, known);
  });
  const answer = (request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const path = request.url.split('?')[0] ?? request.url;
    const allowed = new Set<string>();
    for (const known of paths.values()) {
      if (known.pattern.test(path)) for (const method of known.methods) allowed.add(method);
    }
    if (allowed.size === 0) {
      return reply
        .code(404)
        .send({ code: 'route_not_found', message: `no route ${request.method} ${path}` } satisfies ErrorBody);
    }
    const allow = [...allowed].sort().join(', ');
    return reply
      .code(405)
      .header('allow', allow)
      .send({
        code: 'method_not_allowed',
        message: `${request.method} is not allowed on ${path}; allowed: ${allow}`,
      } satisfies ErrorBody);
  };
  // Answered on arrival, before Fastify reads a body no route asked for (QUERY without a Content-Type is a 400 there).
  fastify.addHook('onRequest', async (request, reply) => {
    if (request.is404) await answer(request, reply);
  });
  // The not-found route of this context, so it runs the hook above.
  fastify.setNotFoundHandler(answer);
  done();
}

export default fp(methodNotAllowed, { name: 'method-not-allowed' });
