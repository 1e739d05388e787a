// A server-sent-events response: named events with JSON data, and a comment every so often so
// proxies and the browser keep an idle stream open. The browser's EventSource reconnects by
// itself after `retry` ms; every stream starts with a full snapshot, so nothing is lost then.
import type { IncomingMessage, ServerResponse } from 'node:http';

export const KEEPALIVE_MS = 15_000;
export const RETRY_MS = 2_000;

export class SseStream {
  private readonly keepalive: NodeJS.Timeout;
  private closedFlag = false;
  private readonly closeHandlers: (() => void)[] = [];

  constructor(
    req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: ${RETRY_MS}\n\n`);
    this.keepalive = setInterval(() => this.res.write(': keepalive\n\n'), KEEPALIVE_MS);
    this.keepalive.unref();
    req.on('close', () => this.close());
    res.on('close', () => this.close());
    res.on('error', () => this.close());
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  send(event: string, data: unknown): void {
    if (this.closedFlag) return;
    // JSON never contains a raw newline, so the data fits on one `data:` line.
    this.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  onClose(handler: () => void): void {
    if (this.closedFlag) handler();
    else this.closeHandlers.push(handler);
  }

  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    clearInterval(this.keepalive);
    this.res.end();
    for (const handler of this.closeHandlers.splice(0)) handler();
  }
}
