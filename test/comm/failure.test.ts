// A peer that dies, or never posts the matching operation, makes the others fail within the timeout
// with an error that says what they waited for and on whom, instead of hanging.
import test, { type ExecutionContext } from 'ava';

import { rendezvousPrefix } from '../../core/rank-launch.js';
import { useRedis } from '../helpers/redis.js';
import { finished, startScenario } from './ranks.js';

const redis = useRedis(test);
const timeoutMs = 3000;
// Process scheduling on 2 shared cores, not the communicator, is what this slack covers.
const slackMs = 5000;

/** Starts `size` ranks, waits until all but the victim are inside the operation, then kills the victim. */
async function killDuring(t: ExecutionContext, scenario: string, size: number, victim: number) {
  const prefix = rendezvousPrefix(`test-${scenario}`, 1);
  const group = startScenario(t, {
    scenario,
    size,
    redisPort: redis().port,
    prefix,
    timeoutMs,
    extra: () => ['--victim', String(victim)],
  });
  await group.message(victim, (m) => m.event === 'idle');
  for (let r = 0; r < size; r++) if (r !== victim) await group.message(r, (m) => m.event === 'entering');
  group.kill(victim);
  t.is((await group.exit(victim)).signal, 'SIGKILL');
  const survivors = [...Array(size).keys()].filter((r) => r !== victim);
  const reports = await finished(t, group, [victim]);
  return { prefix, reports: survivors.map((r) => reports.get(r)!) };
}

test.serial(
  'a peer killed during an all-reduce makes every other rank fail with a clear error',
  async (t) => {
    const victim = 2;
    const { prefix, reports } = await killDuring(t, 'dies', 4, victim);
    for (const r of reports) {
      t.false(r.ok, `rank ${r.rank} did not fail`);
      // Ranks next to the victim lose it; the others lose a neighbour that failed and exited, or time out.
      t.regex(
        r.error!,
        new RegExp(
          String.raw`^all-reduce #2 \(65536 float32\) (lost the connection to rank \d \(.+\)|timed out after 3\.0 s: .+) ` +
            String.raw`\[rank ${r.rank} of 4 in '${prefix}'\]$`,
        ),
      );
      t.true(r.elapsedMs! <= timeoutMs + slackMs, `rank ${r.rank} failed after ${r.elapsedMs} ms`);
    }
    // gloo's ring all-reduce receives from rank+1 and sends to rank-1: both neighbours name the victim.
    for (const neighbour of [1, 3]) {
      t.regex(reports.find((r) => r.rank === neighbour)!.error!, /lost the connection to rank 2 /);
    }
  },
);

test.serial('a peer killed during a receive from it fails the receive, naming that peer', async (t) => {
  const { prefix, reports } = await killDuring(t, 'dies-recv', 2, 1);
  t.regex(
    reports[0]!.error!,
    new RegExp(
      String.raw`^recv from rank 1 \(tag 5, 4096 bytes\) lost the connection to rank 1 \(.+\) ` +
        String.raw`\[rank 0 of 2 in '${prefix}'\]$`,
    ),
  );
  t.true(reports[0]!.elapsedMs! <= timeoutMs + slackMs);
});

test.serial(
  'a send and a recv that disagree on the size never match: both fail, and later calls are refused',
  async (t) => {
    const prefix = rendezvousPrefix('test-mismatch', 1);
    const reports = await finished(
      t,
      startScenario(t, { scenario: 'mismatch', size: 2, redisPort: redis().port, prefix, timeoutMs: 1500 }),
    );
    // Both processes lived to report (gloo would have aborted the receiver on an oversized message).
    const sender = reports.get(0)!;
    const receiver = reports.get(1)!;
    const timedOut = {
      sender:
        `send to rank 1 (tag 3, 16 bytes) timed out after 1.5 s: the peer did not post the matching recv ` +
        `(same tag and byte count) [rank 0 of 2 in '${prefix}']`,
      receiver:
        `recv from rank 0 (tag 3, 32 bytes) timed out after 1.5 s: the peer did not post the matching send ` +
        `(same tag and byte count) [rank 1 of 2 in '${prefix}']`,
    };
    // Whichever side times out first closes its connections, so the other may see the connection drop
    // a moment before its own timeout: either is a correct report, but at least one side timed out.
    const lost = (what: string, peer: number, rank: number) =>
      new RegExp(
        String.raw`^${what} lost the connection to rank ${peer} \(.+\) \[rank ${rank} of 2 in '${prefix}'\]$`,
      );
    t.true(
      sender.error === timedOut.sender ||
        lost(String.raw`send to rank 1 \(tag 3, 16 bytes\)`, 1, 0).test(sender.error!),
      sender.error,
    );
    t.true(
      receiver.error === timedOut.receiver ||
        lost(String.raw`recv from rank 0 \(tag 3, 32 bytes\)`, 0, 1).test(receiver.error!),
      receiver.error,
    );
    t.true(sender.error === timedOut.sender || receiver.error === timedOut.receiver);
    // After its first failure a communicator refuses work, quoting that failure.
    t.is(sender.after, `communicator unusable after an earlier failure: ${sender.error}`);
    t.is(receiver.after, `communicator unusable after an earlier failure: ${receiver.error}`);
    for (const r of [sender, receiver]) {
      t.true(
        (r.elapsedMs as number) <= 1500 + slackMs,
        `rank ${r.rank} failed after ${String(r.elapsedMs)} ms`,
      );
    }
  },
);

test.serial(
  'a posted transfer dropped without waiting makes the communicator refuse further work',
  async (t) => {
    const prefix = rendezvousPrefix('test-dropped', 1);
    const reports = await finished(
      t,
      startScenario(t, {
        scenario: 'dropped',
        size: 2,
        redisPort: redis().port,
        prefix,
        timeoutMs,
        nodeOptions: ['--expose-gc'],
      }),
    );
    const dropped = `recv from rank 1 (tag 9, 8 bytes) was dropped before it completed [rank 0 of 2 in '${prefix}']`;
    t.is(reports.get(0)!.failure, dropped);
    t.is(reports.get(0)!.after, `communicator unusable after an earlier failure: ${dropped}`);
    // Rank 1 waited in the barrier for rank 0, which closed its connections.
    t.regex(reports.get(1)!.after as string, /^barrier #2 (lost the connection to rank 0|timed out after)/);
  },
);
