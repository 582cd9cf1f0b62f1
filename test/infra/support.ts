/**
 * Helpers for the infra tests: the feature flags of cdk.json (so tests synthesize what
 * `cdk synth` does), mailbox files written to a temp dir, and App set-up.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';

export const REPO_ROOT = new URL('../..', import.meta.url).pathname;

/** The `context` of cdk.json: the feature flags the CLI passes to the app. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')) as { context?: Record<string, unknown> };
  return cdkJson.context ?? {};
}

/**
 * An App with cdk.json's flags. `bundle: false` skips esbuild (the functions get a
 * placeholder asset): for the many variants whose bundles are not under test.
 */
export function testApp(options: { bundle?: boolean; outdir?: string } = {}): App {
  return new App({
    ...(options.outdir === undefined ? {} : { outdir: options.outdir }),
    context: { ...cdkJsonContext(), ...(options.bundle === true ? {} : { 'aws:cdk:bundling-stacks': [] }) },
  });
}

const dir = mkdtempSync(join(tmpdir(), 'popdrain-infra-test-'));
let files = 0;

/** Write a mailbox file (an object, or raw text) and return its path. */
export function writeMailboxFile(content: unknown): string {
  const path = join(dir, `mailboxes-${++files}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

export function writeFile(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/** A valid mailbox entry. */
export function mailbox(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, host: 'pop.example.com', user: `${id}@example.com`, auth: { secret: `popdrain/${id}` }, ...extra };
}
