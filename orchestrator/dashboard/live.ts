// The browser's end of the server-sent-event streams. EventSource reconnects by itself; every
// (re)connection starts with a snapshot, so the page is rebuilt from it and nothing is missed.
// The header shows whether updates are flowing.

export type Handlers = Record<string, (data: unknown) => void>;

const indicator = () => document.getElementById('connection');

type ConnectionState = 'live' | 'reconnecting' | 'connecting' | 'closed';

const LABELS: Record<ConnectionState, string> = {
  live: 'live',
  reconnecting: 'reconnecting…',
  connecting: 'connecting…',
  closed: 'disconnected (reload the page)',
};

function showConnection(state: ConnectionState): void {
  const el = indicator();
  if (!el) return;
  el.textContent = LABELS[state];
  el.dataset.state = state;
}

/**
 * Opens `url` and routes each named event's JSON to its handler; `onClosed` hears when the server
 * refused the stream (EventSource then stops retrying). Returns a function that closes it.
 */
export function subscribe(url: string, handlers: Handlers, onClosed?: () => void): () => void {
  const source = new EventSource(url);
  showConnection('connecting');
  source.onopen = () => showConnection('live');
  // CLOSED: the server answered with an error (e.g. the job is gone); EventSource gives up then.
  source.onerror = () => {
    const closed = source.readyState === EventSource.CLOSED;
    showConnection(closed ? 'closed' : 'reconnecting');
    if (closed) onClosed?.();
  };
  for (const [event, handle] of Object.entries(handlers)) {
    source.addEventListener(event, (e) => handle(JSON.parse((e as MessageEvent<string>).data) as unknown));
  }
  return () => source.close();
}
