// The person's one events stream (GET /api/v1/events) for the whole page: every chat's
// messages as soon as they are sent, new chats, typing notices, chats read elsewhere. Read with fetch (the token
// goes in a header, not the URL), parsed as server-sent events, and reconnected with
// Last-Event-ID so a reconnect resumes where it left off; when the server cannot resume it
// says `reset`, and the page reads the chat list and the open chat again.

import * as api from './api';
import type { Chat, Message, ReadMark, Session, Typing } from './api';

export interface LiveHandlers {
  /** The stream is open: what happens from now on arrives here. */
  onReady(): void;
  onMessage(message: Message): void;
  onChat(chat: Chat): void;
  onTyping(typing: Typing): void;
  /** The person read a chat (here or on another page or device). */
  onRead(read: ReadMark): void;
  /** Events may have been missed: read the chat list and the open chat's latest page again. */
  onReset(): void;
  /** The stream is down and being retried; `error` is for the person when it needs saying. */
  onDown(error?: string): void;
  /** The session was revoked (logout elsewhere, a password change): the stream is closed. */
  onRevoked(): void;
}

/** The backoff before the `attempt`th retry: 0.5 s, 1 s, 2 s, ... up to 30 s. */
function backoff(attempt: number): number {
  return Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));
}

interface SseEvent {
  event: string;
  data: string;
}

/** Splits a server-sent-events text stream into events; remembers the last `id`. */
export class SseParser {
  private buffer = '';
  lastEventId: string | null = null;

  /** Feeds a chunk; returns the events it completed. */
  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const events: SseEvent[] = [];
    let end: number;
    while ((end = this.buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') this.lastEventId = value;
      }
      if (data.length > 0) events.push({ event, data: data.join('\n') });
    }
    return events;
  }
}

export class LiveStream {
  private controller: AbortController | null = null;
  private closed = false;
  private retry = 0;
  private timer = 0;
  private lastEventId: string | null = null;

  constructor(
    private readonly session: Session,
    private readonly handlers: LiveHandlers,
  ) {}

  start(): void {
    void this.run();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.controller?.abort();
  }

  private async run(): Promise<void> {
    if (this.closed) return;
    const controller = new AbortController();
    this.controller = controller;
    let error: string | undefined;
    try {
      const response = await api.openEvents(this.session, this.lastEventId, controller.signal);
      await this.read(response);
    } catch (err) {
      if (this.closed) return;
      if (err instanceof api.ApiError) {
        if (err.status === 401) return; // logged out by the API layer
        if (err.status !== 0) error = err.message;
      }
    }
    if (this.closed) return;
    this.handlers.onDown(error);
    this.retry += 1;
    this.timer = window.setTimeout(() => void this.run(), backoff(this.retry));
  }

  private async read(response: Response): Promise<void> {
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    parser.lastEventId = this.lastEventId;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const event of parser.push(value)) {
        this.lastEventId = parser.lastEventId;
        this.dispatch(event);
      }
    }
  }

  private dispatch(event: SseEvent): void {
    let data: unknown;
    try {
      data = JSON.parse(event.data);
    } catch {
      return; // a malformed event is skipped; history still has the messages
    }
    switch (event.event) {
      case 'ready':
        this.retry = 0;
        this.handlers.onReady();
        break;
      case 'message':
        this.handlers.onMessage(data as Message);
        break;
      case 'chat':
        this.handlers.onChat(data as Chat);
        break;
      case 'typing':
        this.handlers.onTyping(data as Typing);
        break;
      case 'read':
        this.handlers.onRead(data as ReadMark);
        break;
      case 'reset':
        this.handlers.onReset();
        break;
      case 'revoked':
        // Logged out elsewhere (logout, a password change): the session is over.
        this.close();
        this.handlers.onRevoked();
        break;
      default:
        // `expired`: the stream ends next and is reopened with the current token.
        break;
    }
  }
}
