// The NIAH heatmap on a job's page, in a real browser (Debian's chromium through playwright-core):
// one cell per context length × depth, coloured by accuracy, for the newest evaluated checkpoint;
// choosing an older step shows its grid; a failed evaluation shows its reason; a job without
// eval: niah has no heatmap. The screenshot goes to test-artifacts/niah-heatmap.png.
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

import type { NiahEvaluation } from '../../core/reports.js';
import { repoRoot } from '../../core/repo-root.js';
import { httpAppForServer } from '../../orchestrator/http/app.js';
import { startServer, type RunningServer } from '../../orchestrator/server.js';
import { parseSpec } from '../../orchestrator/spec/validate.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(repoRoot, 'test-artifacts');

let dir = '';
let server: RunningServer | undefined;
let app: ReturnType<typeof httpAppForServer> | undefined;
let browser: Browser | undefined;

test.before(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium ('make setup' does)`);
  dir = await mkdtemp(join(tmpdir(), 'longctx-heatmap-'));
  app = httpAppForServer({ log: () => {} });
  // No node: the jobs stay queued, and their evaluations are recorded here as the server would.
  server = await startServer({
    grpcPort: 0,
    httpPort: 0,
    runsDir: join(dir, 'runs'),
    localAgent: false,
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

const LENGTHS = [512, 1024, 2048];
const DEPTHS = [0, 0.25, 0.5, 0.75, 1];

function evaluation(step: number, found: (i: number, j: number) => boolean, error?: string): NiahEvaluation {
  const cells = error
    ? []
    : LENGTHS.flatMap((contextLength, i) =>
        DEPTHS.map((depth, j) => ({
          contextLength,
          depth,
          found: found(i, j),
          answerCorrect: found(i, j) ? 5 : j % 5,
          answerTokens: 5,
        })),
      );
  return {
    step,
    checkpoint: `/runs/x/checkpoints/step-${step}`,
    contextLengths: LENGTHS,
    depths: DEPTHS,
    cells,
    accuracy: cells.length ? cells.filter((c) => c.found).length / cells.length : 0,
    ropeTheta: null,
    seconds: 12,
    timeMs: Date.now(),
    ...(error ? { error } : {}),
  };
}

async function submit(name: string, evalSection: string): Promise<string> {
  const specYaml = `name: ${name}\nmodel: { preset: tiny }\ndata: { path: /nonexistent.tokens }\nseq_len: 2048\ndevices: 2\nsteps: 300\ncheckpoint: { every: 100 }\n${evalSection}`;
  const parsed = parseSpec(specYaml);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return (await server!.queue.submit({ spec: parsed.spec, specYaml })).id;
}

test('the job page draws the NIAH heatmap of the newest checkpoint, and an older one on request', async (t) => {
  const jobId = await submit('heat', 'eval:\n  niah: { every: 100, lengths: [512, 1024, 2048] }\n');
  const history = server!.history;
  // Step 100: nothing found. Step 200: found where the needle is near the question or the length short.
  await history.recordNiah(
    jobId,
    evaluation(100, () => false),
  );
  await history.recordNiah(
    jobId,
    evaluation(200, (i, j) => i === 0 || j >= 3),
  );
  const page = await browser!.newPage({ viewport: { width: 1400, height: 1800 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(`${server!.httpUrl!}/#/jobs/${encodeURIComponent(jobId)}`);
  await page.waitForSelector('#niah-heatmap[data-step="200"]', { timeout: 30_000 });

  // Read in the page (no DOM types here): each cell's attributes, computed colour and text.
  const cells = () =>
    page.evaluate<{ length: number; depth: number; accuracy: number; colour: string; text: string }[]>(
      `[...document.querySelectorAll('#niah-heatmap td.cell')].map((e) => ({
        length: Number(e.getAttribute('data-length')),
        depth: Number(e.getAttribute('data-depth')),
        accuracy: Number(e.getAttribute('data-accuracy')),
        colour: getComputedStyle(e).backgroundColor,
        text: e.textContent,
      }))`,
    );
  const rgb = (css: string) =>
    page.evaluate<string>(
      `(() => {
        const probe = document.createElement('div');
        probe.style.background = ${JSON.stringify(css)};
        document.body.append(probe);
        const value = getComputedStyle(probe).backgroundColor;
        probe.remove();
        return value;
      })()`,
    );
  // orchestrator/dashboard/niah-heatmap.ts's scale at its two ends.
  const [green, red] = [await rgb('hsl(120, 65%, 52%)'), await rgb('hsl(0, 65%, 52%)')];
  t.not(green, red);
  const newest = await cells();
  t.deepEqual(
    newest.map((c) => [c.length, c.depth]),
    LENGTHS.flatMap((l) => DEPTHS.map((d) => [l, d])),
    'rows are lengths, columns depths, in the grid order',
  );
  newest.forEach((c, k) => {
    const i = Math.floor(k / DEPTHS.length);
    const j = k % DEPTHS.length;
    const found = i === 0 || j >= 3;
    t.is(c.accuracy, found ? 1 : 0, `${c.length}/${c.depth}`);
    t.is(c.colour, found ? green : red, `${c.length}/${c.depth} colour`);
    t.is(c.text, found ? '5/5' : `${j % 5}/5`);
  });
  t.regex((await page.textContent('#niah-summary')) ?? '', /^Accuracy 60\.0% over 15 cases/);
  t.deepEqual(await page.locator('#niah-heatmap td.row-accuracy').allTextContents(), ['100%', '40%', '40%']);
  await mkdir(ARTIFACTS, { recursive: true });
  await page.locator('#niah-panel').screenshot({ path: join(ARTIFACTS, 'niah-heatmap.png') });

  // The step list, newest first; choosing step 100 draws its grid (all missed).
  t.deepEqual(await page.locator('#niah-step option').allTextContents(), ['step 200: 60%', 'step 100: 0%']);
  await page.selectOption('#niah-step', '100');
  await page.waitForSelector('#niah-heatmap[data-step="100"]', { timeout: 10_000 });
  t.true((await cells()).every((c) => c.accuracy === 0 && c.colour === red));

  // A newer evaluation that failed shows up (the page reads again) with its reason, once chosen.
  await history.recordNiah(
    jobId,
    evaluation(300, () => false, 'out of memory on cpu:1'),
  );
  await page.waitForSelector('#niah-step option[value="300"]', { state: 'attached', timeout: 15_000 });
  t.is(await page.getAttribute('#niah-heatmap', 'data-step'), '100', 'the chosen step stays chosen');
  await page.selectOption('#niah-step', '300');
  t.is(await page.textContent('#niah-error'), 'The evaluation failed: out of memory on cpu:1');
  t.is(await page.locator('#niah-heatmap').count(), 0);
  t.deepEqual(errors, []);

  // A job without eval: niah has no heatmap panel.
  const plain = await submit('plain', '');
  const other = await browser!.newPage();
  await other.goto(`${server!.httpUrl!}/#/jobs/${encodeURIComponent(plain)}`);
  await other.waitForSelector('#job-state', { timeout: 30_000 });
  t.true(await other.locator('#niah-panel').isHidden());
});
