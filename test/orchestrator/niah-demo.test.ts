// Pieces of `longctx demo --niah` that stand on their own: the raised RoPE base for a longer
// context, the SVG heatmap it writes, and its spec (valid, with the evaluation it relies on).
import test from 'ava';

import { NIAH_DEMO_SPEC, raisedRopeTheta } from '../../orchestrator/cli/commands/demo-niah.js';
import { renderNiahSvg } from '../../orchestrator/cli/niah-svg.js';
import { loadSpecFile } from '../../orchestrator/spec/validate.js';

test('the RoPE base for 2× the context follows the NTK-aware rule', (t) => {
  // theta · s^(d / (d - 2)): head dimension 16 at twice the length: 10000 · 2^(8/7).
  t.true(Math.abs(raisedRopeTheta(10000, 16, 2) - 10000 * 2 ** (16 / 14)) < 1e-6);
  t.is(raisedRopeTheta(10000, 16, 1), 10000, 'no longer context, no change');
  t.true(raisedRopeTheta(1e6, 128, 4) > 4e6);
});

test('the SVG heatmap has one coloured cell per length × depth, green found and red missed', (t) => {
  const svg = renderNiahSvg(
    {
      contextLengths: [512, 1024],
      depths: [0, 0.5, 1],
      cells: [512, 1024].flatMap((contextLength, i) =>
        [0, 0.5, 1].map((depth, j) => ({
          contextLength,
          depth,
          found: i === 0 || j === 2,
          answerCorrect: i === 0 || j === 2 ? 5 : 3,
          answerTokens: 5,
        })),
      ),
      accuracy: 4 / 6,
    },
    'demo <step 100> & more',
  );
  t.true(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  const cells = [
    ...svg.matchAll(/<rect x="\d+" y="\d+" width="\d+" height="\d+" rx="3" fill="([^"]+)"\/>/g),
  ].map((m) => m[1]);
  const [green, red] = ['hsl(120, 65%, 52%)', 'hsl(0, 65%, 52%)'];
  t.deepEqual(cells, [green, green, green, red, red, green]);
  t.regex(svg, /demo &lt;step 100&gt; &amp; more/);
  t.regex(svg, /accuracy 66\.7% over 6 cases/);
  t.is((svg.match(/>3\/5</g) ?? []).length, 2);
});

test('the demo spec is valid and evaluates its checkpoints at its trained length', (t) => {
  const r = loadSpecFile(NIAH_DEMO_SPEC);
  if (!r.ok) return t.fail(JSON.stringify(r.errors));
  const niah = r.spec.eval?.niah;
  t.truthy(niah);
  t.deepEqual(niah?.lengths, [r.spec.seq_len]);
  t.is(niah?.steps.at(-1), r.spec.steps, 'the final checkpoint is evaluated');
});
