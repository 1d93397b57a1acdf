import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatedFiles } from '../../src/generated-files.ts';

describe('files generated from the code', () => {
  it.each(Object.entries(generatedFiles()).map(([path, text]) => [relative(process.cwd(), path), path, text]))(
    '%s is up to date (run `npm run generate` after changing src/)',
    (_name, path, text) => {
      expect(readFileSync(path, 'utf8')).toBe(text);
    },
  );
});
