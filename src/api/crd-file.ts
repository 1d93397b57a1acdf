import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { buildCrd } from './crd.ts';

/** The checked-in CRD; config/crd and the chart point at it. */
export const CRD_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'crds', 'taskapi.dev_taskapis.yaml');

export function renderCrdYaml(): string {
  return `# Generated from src/api by \`npm run generate\`; do not edit.\n${stringify(buildCrd(), { lineWidth: 0 })}`;
}
