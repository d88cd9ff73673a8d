// One open chat: the latest history page, older pages as the list is scrolled to the top,
// new message groups in realtime from the events stream, and the composer (Enter sends,
// Shift+Enter starts a new line). Messages are deduplicated by message_id.

import * as api from './api';
import type { GroupEvent, Message, Session, User } from './api';
import { h, replace } from './dom';
import { MessageStore } from './messages';

/** Messages per history page. */
export const PAGE_SIZE = 20;
/** How close to the top (px) scrolling has to come to load the next older page. */
const LOAD_MARGIN = 48;

interface Hooks {
  onError: (text: string) => void;
  onSent: (message: Message) => void;
}

export class ChatView {
  readonly element: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly input: HTMLTextAreaElement;
  private readonly status: HTMLElement;
  private readonly store = new MessageStore();
  private cursor: string | null = null;
  private historyDone = false;
  private loadingOlder = false;
  private source: EventSource | null = null;
  private retry = 0;
  private closed = false;

  constructor(
    private readonly session: Session,
    readonly chatId: string,
    private readonly peer: User,
    private readonly hooks: Hooks,
  ) {
    this.list = h('ol', { class: 'messages', ariaLabel: `Messages with ${peer.username}`, ariaLive: 'polite' });
    this.list.addEventListener('scroll', () => {
      if (this.list.scrollTop < LOAD_MARGIN) void this.loadOlder();
    });
    this.input = h('textarea', {
      rows: 1, placeholder: 'Write a message', ariaLabel: 'Message', maxLength: 4000,
    });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        void this.send();
      }
    });
    this.status = h('span', { class: 'live', title: 'Realtime connection' }, 'connecting…');
    const sendButton = h('button', { class: 'primary', type: 'button', on: { click: () => void this.send() } }, 'Send');
    this.element = h('div', { class: 'chat', data: { chatId } },
      h('header', { class: 'chat-head' },
        h('span', { class: 'avatar' }, peer.username.charAt(0).toUpperCase()),
        h('h2', {}, peer.username),
        this.status),
      this.list,
      h('div', { class: 'composer' }, this.input, sendButton));
    void this.loadLatest();
    this.connect();
  }

  focus(): void {
    this.input.focus();
  }

  close(): void {
    this.closed = true;
    this.source?.close();
  }

  /** The newest page; on a reconnect it also fills what the stream missed. */
  private async loadLatest(): Promise<void> {
    try {
      const page = await api.history(this.session, this.chatId, PAGE_SIZE);
      const first = this.cursor === null && !this.historyDone;
      if (first) {
        this.cursor = page.next_cursor;
        this.historyDone = page.next_cursor === null || page.messages.length < PAGE_SIZE;
      }
      this.add(page.messages, first ? 'bottom' : 'auto');
      // A short first page cannot be scrolled: load on until it can, or history ends.
      if (first) void this.fillViewport();
    } catch (err) {
      this.hooks.onError(err instanceof Error ? err.message : String(err));
    }
  }

  private async fillViewport(): Promise<void> {
    while (!this.closed && !this.historyDone && this.list.scrollHeight <= this.list.clientHeight) {
      if (!(await this.loadOlder())) return;
    }
  }

  /** Loads the page older than the oldest shown; returns whether it loaded one. */
  private async loadOlder(): Promise<boolean> {
    if (this.loadingOlder || this.historyDone || this.cursor === null) return false;
    this.loadingOlder = true;
    const marker = h('li', { class: 'loading' }, 'Loading older messages…');
    this.list.prepend(marker);
    try {
      const page = await api.history(this.session, this.chatId, PAGE_SIZE, this.cursor);
      this.cursor = page.next_cursor;
      // A short page is the last: no request for an empty one.
      this.historyDone = page.next_cursor === null || page.messages.length < PAGE_SIZE;
      marker.remove();
      this.add(page.messages, 'keep', this.historyDone);
      return true;
    } catch (err) {
      marker.remove();
      this.hooks.onError(err instanceof Error ? err.message : String(err));
      return false;
    } finally {
      this.loadingOlder = false;
    }
  }

  private connect(): void {
    if (this.closed) return;
    const source = api.events(this.session, this.chatId);
    this.source = source;
    source.addEventListener('ready', () => {
      this.status.textContent = 'live';
      this.status.classList.add('on');
      // A group written between the history page and this subscription (or while the stream
      // was down) is in history now: read the latest page again; duplicates are dropped.
      void this.loadLatest();
      this.retry = 0;
    });
    source.addEventListener('group', (event) => {
      try {
        const group = JSON.parse((event as MessageEvent<string>).data) as GroupEvent;
        this.add(group.messages, 'auto');
      } catch {
        // A malformed event is skipped; history still has the messages.
      }
    });
    source.addEventListener('lagged', () => void this.loadLatest());
    source.onerror = () => {
      this.status.textContent = 'reconnecting…';
      this.status.classList.remove('on');
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. the server answered an error): retry with backoff.
        this.retry += 1;
        const delay = Math.min(30_000, 1000 * 2 ** Math.min(this.retry, 5));
        window.setTimeout(() => this.connect(), delay);
      } else {
        this.retry = Math.max(this.retry, 1);
      }
    };
  }

  private async send(): Promise<void> {
    const body = this.input.value;
    if (body.trim() === '') return;
    const clientId = crypto.randomUUID();
    this.input.value = '';
    try {
      const message = await api.send(this.session, this.chatId, body, clientId);
      this.add([message], 'bottom');
      this.hooks.onSent(message);
      this.hooks.onError('');
    } catch (err) {
      // Keep what was typed so nothing is lost; the same client id would make a retry safe.
      if (this.input.value === '') this.input.value = body;
      this.hooks.onError(err instanceof Error ? err.message : String(err));
    }
  }

  /**
   * Adds messages and redraws. `bottom` scrolls to the newest, `keep` holds the view still
   * while older messages appear above, `auto` follows new messages only if already at the end.
   */
  private add(messages: Message[], scroll: 'bottom' | 'keep' | 'auto', redraw = false): void {
    const atEnd = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    const fromBottom = this.list.scrollHeight - this.list.scrollTop;
    if (this.store.add(messages) === 0 && this.list.childElementCount > 0 && !redraw) return;
    this.render();
    if (scroll === 'bottom' || (scroll === 'auto' && atEnd)) {
      this.list.scrollTop = this.list.scrollHeight;
    } else if (scroll === 'keep') {
      this.list.scrollTop = this.list.scrollHeight - fromBottom;
    }
  }

  private render(): void {
    const items: HTMLElement[] = [];
    if (this.historyDone && this.store.size > 0) {
      items.push(h('li', { class: 'start' }, `This is the start of your chat with ${this.peer.username}.`));
    }
    if (this.store.size === 0) {
      items.push(h('li', { class: 'start' }, `No messages yet. Say hello to ${this.peer.username}!`));
    }
    let lastDay = '';
    for (const message of this.store.all) {
      const date = new Date(message.time_iso);
      const day = date.toDateString();
      if (day !== lastDay) {
        items.push(h('li', { class: 'day' }, date.toLocaleDateString([], { weekday: 'short', month: 'short', day: 'numeric' })));
        lastDay = day;
      }
      const mine = message.from_user === this.session.id;
      items.push(h('li', { class: mine ? 'msg mine' : 'msg theirs', data: { messageId: message.message_id } },
        h('span', { class: 'sender' }, mine ? 'You' : this.peer.username),
        h('p', { class: 'body' }, message.body),
        h('time', { title: date.toLocaleString() }, date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }))));
    }
    replace(this.list, ...items);
  }
}
