/**
 * node:http for the operator process. An ESM `import … from 'node:http'`
 * builds the module's namespace, which evaluates its lazy exports and so loads
 * Node's bundled undici (about 14 MiB of RSS) that the operator never uses.
 * process.getBuiltinModule hands over the CommonJS module as it is.
 */
export const http = process.getBuiltinModule('node:http');
