// The zigzag shard map: the sequence cut into 2N chunks, in order along the row, each coloured by
// the rank that holds it. Rank r holds chunks r and 2N-1-r, so every rank owns one early and one
// late chunk and the causal attention work is even.
import type { JobPlan } from '../http/views.js';
import { clear, h, svg } from './dom.js';

export function rankColor(rank: number, ranks: number): string {
  return `hsl(${Math.round((360 * rank) / Math.max(1, ranks))}, 60%, 55%)`;
}

export function renderShardMap(root: HTMLElement, plan: JobPlan | null, seqLen: number): void {
  clear(root);
  const shards = plan?.shards ?? [];
  if (shards.length === 0) {
    root.append(h('p', { class: 'empty' }, 'No plan recorded for this job.'));
    return;
  }
  const chunks = 2 * shards.length;
  const owner = new Array<number>(chunks).fill(-1);
  for (const s of shards) for (const c of s.chunks) owner[c] = s.rank;
  const cell = 40;
  const map = svg('svg', {
    viewBox: `0 0 ${chunks * cell} 58`,
    class: 'shard-svg',
    role: 'img',
    'aria-label': 'zigzag shard map',
  });
  owner.forEach((rank, c) => {
    const shard = shards.find((s) => s.rank === rank);
    const start = shard ? shard.starts[shard.chunks.indexOf(c)] : undefined;
    map.append(
      svg(
        'g',
        { class: 'chunk', 'data-chunk': c, 'data-rank': rank },
        svg('rect', {
          x: c * cell + 1,
          y: 1,
          width: cell - 2,
          height: 34,
          rx: 3,
          fill: rankColor(rank, shards.length),
        }),
        svg(
          'text',
          { x: c * cell + cell / 2, y: 23, 'text-anchor': 'middle', class: 'chunk-rank' },
          `r${rank}`,
        ),
        svg(
          'text',
          { x: c * cell + cell / 2, y: 52, 'text-anchor': 'middle', class: 'chunk-index' },
          String(c),
        ),
        svg(
          'title',
          {},
          `chunk ${c}: tokens ${start ?? '?'}…${start !== undefined && shard ? start + shard.chunkTokens - 1 : '?'} on rank ${rank}`,
        ),
      ),
    );
  });
  root.append(
    h(
      'p',
      { class: 'caption' },
      `${seqLen} tokens in ${chunks} chunks of ${shards[0]!.chunkTokens}; rank r holds chunks r and ${chunks - 1}−r (chunk index below each cell).`,
    ),
    map,
  );
}
