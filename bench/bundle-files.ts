/**
 * The files a Lambda bundle's cold start reads: index.mjs and the chunks it imports statically,
 * transitively (the dynamic imports stay out until first use). Used by `bench:coldstart` and
 * test/unit/lambda-bundle.test.ts.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function readAtStart(index: string): Set<string> {
  const read = new Set<string>();
  const visit = (file: string): void => {
    if (read.has(file)) return;
    read.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*"(\.\/[^"]+\.mjs)"/g)) visit(join(dirname(file), m[1]!));
  };
  visit(index);
  return read;
}
