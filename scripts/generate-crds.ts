/** Writes crds/taskapi.dev_taskapis.yaml from the zod schema (src/api). */
import { writeFileSync } from 'node:fs';
import { renderCrdYaml, CRD_FILE } from '../src/api/crd-file.ts';

writeFileSync(CRD_FILE, renderCrdYaml());
console.log(`wrote ${CRD_FILE}`);
