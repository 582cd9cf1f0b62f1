// The cost model (infra/cost-model.ts) against the documents that show it: docs/deploy.md §9
// holds its table verbatim, the README quotes its total. Edit the constants, then the docs.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ASSUMPTIONS, COST_LINES, headlineTotal, INVOCATIONS, keepLookupReadUnits, keptMessagesPerMailbox, ledgerReadUnits, PRICES, renderCostTable, total } from '../../infra/cost-model.js';

const root = new URL('../..', import.meta.url).pathname;

describe('cost model', () => {
  it('docs/deploy.md shows exactly the table the constants compute', () => {
    const deploy = readFileSync(`${root}docs/deploy.md`, 'utf8');
    const shown = /<!-- cost-model:begin -->\n([\s\S]*?)\n<!-- cost-model:end -->/.exec(deploy)?.[1];
    expect(shown, 'docs/deploy.md has no cost-model markers').toBeDefined();
    expect(shown).toBe(renderCostTable());
  });

  it('the README quotes the total of month 1 with the delete policy', () => {
    expect(readFileSync(`${root}README.md`, 'utf8')).toContain(`about ${headlineTotal()} a month per 1,000 mailboxes`);
  });

  it('the total is the sum of the lines, and the target holds for delete in month 1', () => {
    const sum = COST_LINES.reduce((s, l) => s + l.cost('delete', 1), 0);
    expect(total('delete', 1)).toBeCloseTo(sum, 9);
    // The target holds in every scenario, keep in month 12 included.
    for (const [policy, month] of [['delete', 1], ['delete', 12], ['keep', 1], ['keep', 12]] as const) expect(total(policy, month)).toBeLessThanOrEqual(350);
  });

  it('lines follow from the assumptions: drainer compute, keep reads that grow with the mailbox', () => {
    const runs = (ASSUMPTIONS.mailboxes * 24 * 60 * ASSUMPTIONS.daysPerMonth) / ASSUMPTIONS.intervalMinutes;
    expect(runs).toBe(8_640_000);
    // Billed per invocation: the runs in batches of 5 (of 10), 2 s each, 1 GB.
    expect(ASSUMPTIONS.averageBatchFill).toBeLessThanOrEqual(ASSUMPTIONS.drainerBatchSize);
    expect(INVOCATIONS).toBe(1_728_000);
    const compute = COST_LINES.find((l) => l.item.startsWith('Lambda: drainer compute'))!;
    expect(compute.cost('delete', 1)).toBeCloseTo((runs / 5) * 2 * 1 * PRICES.lambdaGBSecondArm, 6);
    // Lambda requests and SQS requests fall with the invocations too.
    const sqsLine = COST_LINES.find((l) => l.item === 'SQS FIFO')!;
    expect(sqsLine.cost('delete', 1)).toBeCloseTo(((runs * 0.1 + (runs / 5) * 2 + 1_000_000) / 1e6) * PRICES.sqsFifoPerMillion, 6);
    // keep: the done set (16 items, half a unit each while under 4 KB) and the UIDLs it does
    // not answer, not one read per UIDL still on the server (750 on average in month 1).
    expect(keptMessagesPerMailbox(1)).toBe(750);
    expect(keepLookupReadUnits(1)).toBeCloseTo(16 * 0.5 + 50 / 288 + 16, 9);
    expect(ledgerReadUnits('keep', 1) - ledgerReadUnits('delete', 1)).toBeCloseTo(runs * keepLookupReadUnits(1), 3);
    expect(keepLookupReadUnits(12)).toBeLessThan(keptMessagesPerMailbox(12) / 100);
    expect(total('keep', 12)).toBeGreaterThan(total('keep', 1));
    // delete does not grow but for stored mail, the archive and the logs.
    const growing = COST_LINES.filter((l) => l.cost('delete', 12) !== l.cost('delete', 1)).map((l) => l.item);
    expect(growing).toEqual(['S3 storage (Standard)', 'Event archive (Email Stored/Skipped only)', 'CloudWatch Logs']);
  });
});
