// Shared pieces of the ops tests: an HTTP listener for the app on a free loopback port, a small
// server-sent-events reader, and step records made by the real StepAggregator from per-rank
// reports (what the Telemetry service records for a gang).
import { request, createServer, type IncomingMessage } from 'node:http';

import type { HttpApp } from '../../orchestrator/http/app.js';
import type { JobSpec } from '../../core/job-spec.js';
import { parseSpec } from '../../orchestrator/spec/validate.js';
import {
  StepAggregator,
  type RankStep,
  type StepSummary,
} from '../../orchestrator/telemetry/step-aggregator.js';

export interface Listening {
  url: string;
  close(): Promise<void>;
}

export async function listen(app: HttpApp): Promise<Listening> {
  const server = createServer((req, res) => app.handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

export async function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

export interface SseEvent {
  event: string;
  data: unknown;
}

/** Reads a server-sent-event stream; `next` waits for the next event matching a test. */
export class SseReader {
  readonly events: SseEvent[] = [];
  status = 0;
  private buffer = '';
  private waiters: (() => void)[] = [];
  private readonly req;
  readonly opened: Promise<number>;

  constructor(url: string, headers: Record<string, string> = {}) {
    let opened!: (status: number) => void;
    this.opened = new Promise((resolve) => (opened = resolve));
    this.req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      this.status = res.statusCode ?? 0;
      opened(this.status);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => this.feed(chunk));
    });
    this.req.on('error', () => opened(0));
    this.req.end();
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) !== -1) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      let event = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data) this.events.push({ event, data: JSON.parse(data) as unknown });
    }
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** The first event at index >= `from` named `event` that passes `test`; fails after `timeoutMs`. */
  async next<T>(
    event: string,
    test: (data: T) => boolean = () => true,
    from = 0,
    timeoutMs = 10_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.slice(from).find((e) => e.event === event && test(e.data as T));
      if (found) return found.data as T;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `no '${event}' event within ${timeoutMs} ms (got: ${this.events.map((e) => e.event).join(', ')})`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }

  close(): void {
    this.req.destroy();
  }
}

/**
 * Steps of a gang of `world` ranks as the Telemetry service records them: per-rank reports through
 * the real aggregator. Rank `slowRank` computes twice as long as the others, so it is flagged a
 * straggler from the aggregator's third step on.
 */
export function gangSteps(count: number, world: number, slowRank = -1, firstStep = 1): StepSummary[] {
  const aggregator = new StepAggregator({ worldSize: world, flopsPerStep: 4e9, peakFlopsPerDevice: 1e10 });
  const out: StepSummary[] = [];
  for (let step = firstStep; step < firstStep + count; step++) {
    for (let rank = 0; rank < world; rank++) {
      const compute = rank === slowRank ? 0.2 : 0.1;
      const report: RankStep = {
        rank,
        step,
        loss: 5.5 - 0.1 * step,
        tokens: 4096,
        lr: 1e-3,
        gradNorm: 1.5,
        stepSeconds: 0.25,
        compute,
        commWait: 0.2 - compute / 2,
        data: 0.01,
        optimizer: 0.02,
        checkpoint: 0,
        deviceBytesCurrent: 1_000_000 + rank,
        deviceBytesPeak: 3_000_000 + 1000 * rank + step,
        hostBytes: 0,
        bytesSent: 1 << 20,
        timeMs: 1_700_000_000_000 + 250 * step,
      };
      const summary = aggregator.add(report);
      if (summary) out.push(summary);
    }
  }
  return out;
}

/** A valid spec of the tiny model for `devices` ranks (its data file is not read by these tests). */
export function jobSpec(name: string, devices: number, steps: number): { spec: JobSpec; specYaml: string } {
  const specYaml = [
    `name: ${name}`,
    'model: { preset: tiny }',
    'data: { path: /nonexistent/corpus.tokens }',
    `seq_len: ${2 * devices * 8}`,
    `devices: ${devices}`,
    `steps: ${steps}`,
    'max_restarts: 2',
    '',
  ].join('\n');
  const parsed = parseSpec(specYaml);
  if (!parsed.ok) throw new Error(`test spec ${name} is invalid: ${JSON.stringify(parsed.errors)}`);
  return { spec: parsed.spec, specYaml };
}
