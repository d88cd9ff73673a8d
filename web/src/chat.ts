// One open chat: the latest history page, older pages as the list is scrolled to the top,
// new messages in realtime (from the person's events stream, which main.ts hands over, or from
// Firestore, see realtime.ts), the other member's typing notices, and the composer (Enter
// sends, Shift+Enter starts a new line; typing sends a notice every few seconds). Messages are
// deduplicated by message_id, whichever path brought them.

import * as api from './api';
import type { Message, Session, User } from './api';
import { h, replace } from './dom';
import { MessageStore, timeuuidMs } from './messages';
import type { Realtime, Subscription } from './realtime';

/** Messages per history page. */
export const PAGE_SIZE = 20;
/** How close to the top (px) scrolling has to come to load the next older page. */
const LOAD_MARGIN = 48;
/** At most one typing notice per this many ms while typing. */
const TYPING_EVERY_MS = 3000;
/** How long a typing notice shows without another. */
const TYPING_SHOWN_MS = 5000;

interface Hooks {
  onError: (text: string) => void;
  onSent: (message: Message) => void;
}

export class ChatView {
  readonly element: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly input: HTMLTextAreaElement;
  private readonly status: HTMLElement;
  /** Why realtime is down, shown until it is live again (the page banner is for requests). */
  private readonly notice: HTMLElement;
  private readonly store = new MessageStore();
  private cursor: string | null = null;
  private historyDone = false;
  private loadingOlder = false;
  private subscription: Subscription | null = null;
  private closed = false;
  private lastTypingSent = 0;
  private typingTimer = 0;
  private readonly typingLine: HTMLElement;
  /** Event time (ms) of the newest message from history or realtime (not from a send). */
  private newestMs: number | null = null;

  constructor(
    private readonly session: Session,
    readonly chatId: string,
    private readonly peer: User,
    /** The Firestore listener; null when messages come from the person's events stream. */
    private readonly realtime: Realtime | null,
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
    this.input.addEventListener('input', () => this.typed());
    this.status = h('span', { class: 'live', title: 'Realtime connection' }, 'connecting…');
    this.notice = h('p', { class: 'realtime-error', role: 'alert', ariaLive: 'polite' });
    this.notice.hidden = true;
    this.typingLine = h('p', { class: 'typing', ariaLive: 'polite' });
    this.typingLine.hidden = true;
    const sendButton = h('button', { class: 'primary', type: 'button', on: { click: () => void this.send() } }, 'Send');
    // Blocking: neither side can write to the other until it is lifted (the peer is not told).
    const blockButton = h('button', { class: 'ghost', type: 'button', title: `Stop ${peer.username} from writing to you` }, 'Block');
    let blocked = false;
    const showBlocked = (now: boolean) => {
      blocked = now;
      blockButton.textContent = now ? 'Unblock' : 'Block';
      this.input.disabled = now;
      this.input.placeholder = now ? `You blocked ${peer.username}: unblock to write` : 'Write a message';
    };
    blockButton.addEventListener('click', () => {
      api.setBlocked(session, peer.id, !blocked).then(
        () => showBlocked(!blocked),
        (err: unknown) => this.hooks.onError(err instanceof Error ? err.message : String(err)),
      );
    });
    api.blockedIds(session).then((ids) => showBlocked(ids.has(peer.id)), () => {});
    this.element = h('div', { class: 'chat', data: { chatId, realtime: realtime?.mode ?? 'sse' } },
      h('header', { class: 'chat-head' },
        h('span', { class: 'avatar' }, peer.username.charAt(0).toUpperCase()),
        h('h2', {}, peer.username),
        this.status,
        blockButton),
      this.notice,
      this.list,
      this.typingLine,
      h('div', { class: 'composer' }, this.input, sendButton));
    // Firestore starts once the latest page is read, after its newest message (see `since`);
    // the events stream is already open, and what it brings meanwhile is merged.
    void this.loadLatest().then(() => this.connect());
  }

  /** Messages of this chat from the person's events stream. */
  addLive(messages: Message[]): void {
    if (this.realtime) return; // Firestore brings this chat's messages
    for (const message of messages) {
      if (message.from_user !== this.session.id) this.hideTyping();
    }
    this.add(messages, 'auto');
  }

  /** Whether the person's events stream is open; `error` says why not when it needs saying. */
  setLive(live: boolean, error?: string): void {
    if (this.realtime) return; // the Firestore listener reports its own state
    this.status.textContent = live ? 'live' : 'reconnecting…';
    this.status.classList.toggle('on', live);
    this.notice.textContent = error ?? '';
    this.notice.hidden = !error;
  }

  /** The stream may have missed messages: read the latest page again (duplicates drop). */
  reloadLatest(): void {
    void this.loadLatest();
  }

  /** The other member is typing. */
  showTyping(): void {
    this.typingLine.textContent = `${this.peer.username} is typing…`;
    this.typingLine.hidden = false;
    clearTimeout(this.typingTimer);
    this.typingTimer = window.setTimeout(() => this.hideTyping(), TYPING_SHOWN_MS);
  }

  private hideTyping(): void {
    clearTimeout(this.typingTimer);
    this.typingLine.hidden = true;
  }

  /** Sends a typing notice, at most every few seconds, while there is text. */
  private typed(): void {
    const now = Date.now();
    if (this.input.value.trim() === '' || now - this.lastTypingSent < TYPING_EVERY_MS) return;
    this.lastTypingSent = now;
    api.typing(this.session, this.chatId).catch(() => {});
  }

  focus(): void {
    this.input.focus();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.typingTimer);
    this.subscription?.close();
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
    if (this.closed || !this.realtime) return;
    this.subscription = this.realtime.subscribe(this.chatId, {
      since: () => this.newestMs,
      onMessages: (messages) => this.add(messages, 'auto'),
      onLive: () => {
        this.status.textContent = 'live';
        this.status.classList.add('on');
        this.notice.textContent = '';
        this.notice.hidden = true;
        // A group written between the history page and this subscription (or while it was
        // down) is in history now: read the latest page again; duplicates are dropped.
        void this.loadLatest();
      },
      onDown: (error) => {
        this.status.textContent = error ? 'offline' : 'reconnecting…';
        this.status.classList.remove('on');
        if (error) {
          this.notice.textContent = error;
          this.notice.hidden = false;
        }
      },
      onGap: () => void this.loadLatest(),
    });
  }

  private async send(): Promise<void> {
    const body = this.input.value;
    if (body.trim() === '') return;
    const clientId = crypto.randomUUID();
    this.input.value = '';
    try {
      this.lastTypingSent = 0;
      const message = await api.send(this.session, this.chatId, body, clientId);
      // Not `confirmed`: its group is not written yet, so Firestore must still deliver it.
      this.add([message], 'bottom', false, false);
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
   * `confirmed`: the messages are written (history or realtime), not just sent.
   */
  private add(messages: Message[], scroll: 'bottom' | 'keep' | 'auto', redraw = false, confirmed = true): void {
    if (confirmed) {
      for (const message of messages) {
        const ms = timeuuidMs(message.time);
        if (this.newestMs === null || ms > this.newestMs) this.newestMs = ms;
      }
    }
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
