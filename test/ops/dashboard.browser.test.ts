// The dashboard in a real browser against a running job: Debian's chromium, headless, driven by
// playwright-core (never a downloaded browser). A server with its own Redis and a node agent of 8
// emulated CPU devices trains the tiny model; the page must list the job, grow the loss chart as
// steps arrive, show all 8 ranks in the per-rank panels (memory on the scale of the budget), paint
// the job before any live event arrives, and follow the job to CANCELLED. Screenshots are kept in
// test-artifacts/ for people to look at.
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

import { runDataCommand } from '../../data/commands.js';
import { ControlClient } from '../../orchestrator/cli/control-client.js';
import { httpAppForServer } from '../../orchestrator/http/app.js';
import { startServer, type RunningServer } from '../../orchestrator/server.js';
import { repoRoot } from '../../core/repo-root.js';
import { waitFor } from '../helpers/control.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(repoRoot, 'test-artifacts');

let dir = '';
let server: RunningServer | undefined;
let app: ReturnType<typeof httpAppForServer> | undefined;
let browser: Browser | undefined;

test.before(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: install Debian's chromium ('make setup' does: apt-get install chromium)`,
    );
  dir = await mkdtemp(join(tmpdir(), 'longctx-browser-'));
  const quiet = { stdout: { write: () => true }, stderr: { write: () => true } };
  if ((await runDataCommand(['synth', '--out', join(dir, 'synth.jsonl'), '--docs', '40'], quiet)) !== 0)
    throw new Error('data synth failed');
  if (
    (await runDataCommand(['pack', '--out', join(dir, 'corpus.tokens'), join(dir, 'synth.jsonl')], quiet)) !==
    0
  )
    throw new Error('data pack failed');
  app = httpAppForServer({ log: () => {} });
  server = await startServer({
    grpcPort: 0,
    httpPort: 0,
    runsDir: join(dir, 'runs'),
    localAgent: { devices: 8 },
    http: app.http,
    log: () => {},
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
});

test.after.always(async () => {
  await browser?.close();
  await app?.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The number in `selector`'s `attribute` once it is at least `least`. */
async function waitForAtLeast(
  page: Page,
  selector: string,
  attribute: string,
  least: number,
): Promise<number> {
  return waitFor(
    `${selector} ${attribute} >= ${least}`,
    async () => {
      const v = Number(await page.getAttribute(selector, attribute, { timeout: 60_000 }));
      return Number.isFinite(v) && v >= least ? v : undefined;
    },
    60_000,
  );
}

/** Runs in the page: each element's data-rank, in document order. */
const rankAttributes = (elements: { getAttribute(name: string): string | null }[]) =>
  elements.map((e) => Number(e.getAttribute('data-rank')));

test('the dashboard follows a running job: table, loss curve gaining points, 8 ranks, then its cancellation', async (t) => {
  const specPath = join(dir, 'browser.yaml');
  await writeFile(
    specPath,
    'name: browser\nmodel: { preset: tiny }\ndata: { path: corpus.tokens }\nseq_len: 64\ndevices: 8\nsteps: 100000\ncheckpoint: { every: 25, keep: 2 }\n',
  );
  const client = new ControlClient(server!.grpcAddress);
  t.teardown(() => client.close());
  const submitted = await client.submitJob(await readFile(specPath, 'utf8'), specPath);
  t.true(submitted.accepted, JSON.stringify(submitted.errors));
  const jobId = submitted.jobId;

  const page = await browser!.newPage({ viewport: { width: 1400, height: 1700 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(server!.httpUrl!);

  // The jobs table lists the job, and its row turns RUNNING when the gang starts.
  const row = `tr[data-job-id="${jobId}"]`;
  await page.waitForSelector(`${row}[data-state="RUNNING"]`, { timeout: 60_000 });
  t.is(await page.textContent(`${row} td.state`), 'RUNNING');
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-jobs.png') });

  // The job's page: the loss chart gains points as steps arrive over the event stream.
  await page.click(`${row} a`);
  const first = await waitForAtLeast(page, '#loss-chart', 'data-points', 1);
  const later = await waitForAtLeast(page, '#loss-chart', 'data-points', first + 3);
  t.true(later > first, `${first} → ${later} points`);
  // Both charts are drawn from the same step in one task: read them together, since more steps
  // keep arriving between two separate reads.
  const counts = await page.evaluate<(string | null)[]>(
    "['#loss-chart', '#throughput-chart'].map((id) => document.querySelector(id)?.getAttribute('data-points'))",
  );
  t.is(counts[1], counts[0], 'the throughput chart has as many points as the loss chart');

  // Every rank has a time split and a memory bar; the shard map has 2 × 8 chunks.
  await waitFor(
    '8 rank rows',
    async () => (await page.locator('#rank-panel .rank-row').count()) === 8,
    60_000,
  );
  t.deepEqual(
    await page.locator('#rank-panel .rank-row').evaluateAll(rankAttributes),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  t.is(await page.locator('#memory-panel .mem-row').count(), 8);
  t.is(await page.locator('#shard-map .chunk').count(), 16);
  t.deepEqual(
    await page.locator('#shard-map .chunk').evaluateAll(rankAttributes),
    [0, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2, 1, 0],
  );
  const loss = Number(await page.textContent('.stat.loss .value'));
  t.true(loss > 0 && loss < 10, `loss ${loss}`);
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-job.png'), fullPage: true });

  // The throughput chart draws tokens/s alone (MFU is proportional to it: a number in the header).
  t.deepEqual(await page.locator('#throughput-chart .u-legend .u-series .u-label').allTextContents(), [
    'step',
    'tokens/s',
  ]);
  t.regex((await page.textContent('.stat.mfu .value')) ?? '', /%$/);

  // Memory bars: a full bar is the device budget, and the caption says so.
  const { plan } = (await (await fetch(`${server!.httpUrl!}/api/jobs/${jobId}`)).json()) as {
    plan: { budgetBytes: number };
  };
  t.true(plan.budgetBytes > 0);
  t.is(Number(await page.getAttribute('#memory-panel .mem-scale', 'data-scale-bytes')), plan.budgetBytes);
  t.regex(
    (await page.textContent('#memory-panel .mem-scale')) ?? '',
    /^Scale: a full bar is the device budget, \d+(\.\d+)? [KMG]iB per device\.$/,
  );
  // Read in the page (no DOM types here): each row's bar and measured widths, and its numbers.
  const bars = await page.evaluate<{ bar: number; measured: number; text: string }[]>(
    `[...document.querySelectorAll('#memory-panel .mem-row')].map((row) => ({
      bar: row.querySelector('.mem-bar').getBoundingClientRect().width,
      measured: row.querySelector('.seg.measured').getBoundingClientRect().width,
      text: row.querySelector('.rank-numbers').textContent,
    }))`,
  );
  const peaks = await page.evaluate<number[]>(
    `fetch('/api/jobs/${jobId}').then((r) => r.json()).then((d) => d.rankPeakBytes)`,
  );
  bars.forEach((b, rank) => {
    // 2 px at least (a tiny peak stays visible), else its share of the budget, within a pixel.
    const expected = Math.max(2, (b.bar * peaks[rank]!) / plan.budgetBytes);
    t.true(Math.abs(b.measured - expected) <= 1.5, `rank ${rank}: ${b.measured}px, expected ${expected}px`);
    t.regex(b.text, /of budget\)$/);
  });

  // The first paint of the job's page shows the job before any live event: with the event
  // stream held back, the page still renders it from one plain read.
  const held = await browser!.newPage({ viewport: { width: 1400, height: 1700 } });
  t.teardown(() => held.close());
  await held.route('**/stream', () => {
    // never answered: no live event reaches this page
  });
  await held.goto(`${server!.httpUrl!}/#/jobs/${encodeURIComponent(jobId)}`);
  await held.waitForSelector('#job-state', { timeout: 30_000 });
  t.is(await held.textContent('#job-state'), 'RUNNING');
  t.is(await held.textContent('#connection'), 'connecting…', 'no live update has arrived');
  t.true(Number(await held.getAttribute('#loss-chart', 'data-points')) >= 1);
  t.is(await held.locator('#memory-panel .mem-row').count(), 8);
  t.regex((await held.textContent('.stat.step .value')) ?? '', /^\d+ \/ 100000 /);
  await held.screenshot({ path: join(ARTIFACTS, 'dashboard-job-first-paint.png'), fullPage: true });
  // The jobs table too.
  await held.goto(`${server!.httpUrl!}/#/`);
  await held.waitForSelector(`${row}[data-state="RUNNING"]`, { timeout: 30_000 });
  t.true(await held.locator('.empty').first().isHidden(), "no 'No jobs yet' while a job exists");

  // Cancelling shows up live on the open page.
  const cancelled = await client.cancelJob(jobId);
  t.true(cancelled.cancelled, cancelled.message);
  await page.waitForSelector('#job-state:text("CANCELLED")', { timeout: 60_000 });
  t.deepEqual(errors, []);

  // A job that does not exist: the page says so instead of showing empty panels.
  const other = await browser!.newPage();
  await other.goto(`${server!.httpUrl!}/#/jobs/nobody-1-0000`);
  await other.waitForSelector('#job-error', { timeout: 30_000 });
  t.is(await other.textContent('#job-error'), "no job 'nobody-1-0000'");
});
