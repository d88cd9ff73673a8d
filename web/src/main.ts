// confab's web client: sign up and log in, find users, start or open chats, and chat in
// realtime, with history pages loaded as you scroll up. One events stream per page (live.ts)
// carries everything for the person's chats as it happens: messages (shown at once, or, when
// the server's /api/v1/config says `firestore`, read from the aggregator's Firestore documents
// by the open chat), new chats, typing notices; the chat list keeps itself current from it
// (a preview and an unread count per chat, read positions kept by the server) without polling. Every piece of user data reaches
// the page as text, never as HTML.

import './style.css';
import * as api from './api';
import type { Chat, Message, ReadMark, Session, Typing, User } from './api';
import { h, replace } from './dom';
import { ChatView } from './chat';
import { LiveStream } from './live';
import { createRealtime, type Realtime } from './realtime';

const root = document.getElementById('app') as HTMLElement;

let session: Session | null = api.loadSession();
let chats: Chat[] = [];
let users: User[] = [];
let current: ChatView | null = null;
let realtime: Realtime | null = null;
let live: LiveStream | null = null;
let liveUp = false;
let timers: number[] = [];
/**
 * Per chat: the last message's text, the peer's messages not read yet (from the server's chat
 * list, then counted from the events stream), and the `time` of the newest message known.
 */
interface ChatMeta { preview: string; unread: number; capped: boolean; latest: string | null }
const chatMeta = new Map<string, ChatMeta>();
/** The newest `time` this page marked read per chat, so each is sent once. */
const markedRead = new Map<string, string>();
/**
 * Per chat: the latest messages the events stream brought, for when the chat is opened: history
 * has a message only once its group is written, seconds after it was sent.
 */
const recentLive = new Map<string, Message[]>();
/** Live messages kept per chat (a history page and then some). */
const RECENT_LIVE = 100;

// A chat open in a hidden tab is not read until the tab shows.
document.addEventListener('visibilitychange', () => markOpenChatRead());

api.setUnauthorizedHandler(() => logOut('Your session has expired. Please log in again.'));

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------- sign-up and login

function authScreen(notice = ''): void {
  let mode: 'login' | 'signup' = 'login';
  const username = h('input', {
    name: 'username', autocomplete: 'username', required: true, placeholder: 'your-name', ariaLabel: 'Username',
  });
  const password = h('input', {
    name: 'password', type: 'password', autocomplete: 'current-password', required: true, ariaLabel: 'Password',
  });
  // Shown once the server says sign-up needs an invite ([auth.signup] mode = "invite").
  const invite = h('input', { name: 'invite', autocomplete: 'off', ariaLabel: 'Invite code' });
  const inviteLabel = h('label', {}, 'Invite code', invite);
  inviteLabel.hidden = true;
  const error = h('p', { class: 'error', role: 'alert', ariaLive: 'assertive' }, notice);
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const hint = h('p', { class: 'hint' });
  const loginTab = h('button', { type: 'button', class: 'tab active' }, 'Log in');
  const signupTab = h('button', { type: 'button', class: 'tab' }, 'Sign up');
  const setMode = (next: 'login' | 'signup') => {
    mode = next;
    loginTab.classList.toggle('active', mode === 'login');
    signupTab.classList.toggle('active', mode === 'signup');
    submit.textContent = mode === 'login' ? 'Log in' : 'Create account';
    password.autocomplete = mode === 'login' ? 'current-password' : 'new-password';
    hint.textContent = mode === 'signup' ? 'Username: 3 to 32 letters, digits, - or _. Password: at least 12 characters, hard to guess.' : '';
    if (mode === 'login') inviteLabel.hidden = true;
    error.textContent = '';
  };
  loginTab.addEventListener('click', () => setMode('login'));
  signupTab.addEventListener('click', () => setMode('signup'));

  const form = h('form', { class: 'card auth', ariaLabel: 'Log in or sign up' },
    h('h1', {}, 'confab'),
    h('p', { class: 'tagline' }, 'Realtime chat, grouped before it is written.'),
    h('div', { class: 'tabs', role: 'tablist' }, loginTab, signupTab),
    h('label', {}, 'Username', username),
    h('label', {}, 'Password', password),
    inviteLabel,
    hint,
    error,
    submit,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    submit.disabled = true;
    try {
      if (mode === 'signup') await api.signUp(username.value.trim(), password.value, invite.value.trim());
      session = await api.logIn(username.value.trim(), password.value);
      api.saveSession(session);
      void home();
    } catch (err) {
      error.textContent = errorText(err);
      if (err instanceof api.ApiError && (err.code === 'invite_required' || err.code === 'invalid_invite')) {
        inviteLabel.hidden = false;
        invite.focus();
      }
    } finally {
      submit.disabled = false;
    }
  });
  replace(root, h('main', { class: 'auth-page' }, form));
  username.focus();
}

/** Creates an invite code and shows it to pass on (servers in invite mode; others say why not). */
async function invite(): Promise<void> {
  if (!session) return;
  try {
    const created = await api.createInvite(session);
    showBanner(`Invite code (works once, until ${new Date(created.expires_at).toLocaleString()}): ${created.code}`);
  } catch (err) {
    showBanner(errorText(err));
  }
}

function logOut(notice = ''): void {
  // Revokes the session on the server too, so its token and refresh token stop working.
  if (session) void api.logOutSession(session);
  current?.close();
  current = null;
  realtime?.close();
  realtime = null;
  live?.close();
  live = null;
  liveUp = false;
  chatMeta.clear();
  markedRead.clear();
  recentLive.clear();
  delete document.body.dataset.realtime;
  for (const timer of timers) clearInterval(timer);
  timers = [];
  session = null;
  api.saveSession(null);
  history.replaceState(null, '', location.pathname);
  authScreen(notice);
}

// ---------------------------------------------------------------- the signed-in layout

const statsLine = h('span', { class: 'stats', title: 'What grouping saves: messages sent against documents written' });
const banner = h('p', { class: 'banner', role: 'alert', ariaLive: 'polite' });
const chatList = h('ul', { class: 'chat-list', ariaLabel: 'My chats' });
const userList = h('ul', { class: 'user-list', ariaLabel: 'Users' });
const search = h('input', { type: 'search', placeholder: 'Search users', ariaLabel: 'Search users' });
const pane = h('section', { class: 'pane' });

function showBanner(text: string): void {
  banner.textContent = text;
  banner.hidden = text === '';
}

function peerOf(chat: Chat): User {
  return chat.members.find((m) => m.id !== session?.id) ?? chat.members[0];
}

function renderChats(): void {
  if (chats.length === 0) {
    replace(chatList, h('li', { class: 'empty' }, 'No chats yet: pick a user below.'));
    return;
  }
  replace(chatList, ...chats.map((chat) => {
    const peer = peerOf(chat);
    const active = current?.chatId === chat.chat_id;
    const meta = chatMeta.get(chat.chat_id);
    const unread = meta?.unread ?? 0;
    const count = meta?.capped ? `${unread}+` : String(unread);
    return h('li', {},
      h('button', {
        class: active ? 'item active' : 'item',
        data: { chatId: chat.chat_id },
        on: { click: () => openChat(chat) },
      },
      h('span', { class: 'avatar' }, peer.username.charAt(0).toUpperCase()),
      h('span', { class: 'name' }, peer.username),
      h('time', { class: 'when' }, shortTime(chat.last_activity)),
      h('span', { class: 'preview' }, meta?.preview ?? ''),
      unread > 0 ? h('span', { class: 'unread', ariaLabel: `${count} unread` }, count) : ''),
    );
  }));
}

function renderUsers(): void {
  const term = search.value.trim().toLowerCase();
  const shown = users.filter((u) => u.id !== session?.id);
  if (shown.length === 0) {
    replace(userList, h('li', { class: 'empty' }, term ? `No user matches “${term}”.` : 'No other users yet.'));
    return;
  }
  replace(userList, ...shown.slice(0, 50).map((user) => h('li', {},
    h('button', { class: 'item', data: { userId: user.id, username: user.username }, on: { click: () => startChat(user) } },
      h('span', { class: 'avatar' }, user.username.charAt(0).toUpperCase()),
      h('span', { class: 'name' }, user.username),
      h('span', { class: 'when' }, 'chat')),
  )));
}

function shortTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleDateString([], { month: 'short', day: 'numeric' });
}

/** Whether `a` is a later message time than `b` (a missing `b` is earlier than anything). */
function later(a: string, b: string | null): boolean {
  return b === null || api.timeOrder(a) > api.timeOrder(b);
}

/**
 * The chat list's counts, plus what the events stream brought after the server counted: the
 * stream opened before the list was read, so a message newer than the list's latest message is
 * one the server did not count.
 */
function metaFromList(chat: Chat): ChatMeta {
  const last = chat.last_message ?? null;
  const meta: ChatMeta = {
    preview: last?.body.slice(0, 80) ?? '',
    unread: chat.unread ?? 0,
    capped: chat.unread_capped ?? false,
    latest: last?.time ?? null,
  };
  for (const message of recentLive.get(chat.chat_id) ?? []) {
    if (!later(message.time, meta.latest)) continue;
    meta.latest = message.time;
    meta.preview = message.body.slice(0, 80);
    if (message.from_user !== session?.id) meta.unread += 1;
    else meta.unread = 0; // answering a chat reads it
  }
  if (current?.chatId === chat.chat_id) meta.unread = 0;
  return meta;
}

/** Marks the open chat read up to its newest message (once per message). */
function markOpenChatRead(): void {
  if (!session || !current || document.hidden) return;
  const chatId = current.chatId;
  const latest = chatMeta.get(chatId)?.latest;
  if (!latest) return;
  const marked = markedRead.get(chatId);
  if (marked && !later(latest, marked)) return;
  markedRead.set(chatId, latest);
  api.markRead(session, chatId, latest).catch(() => markedRead.delete(chatId));
}

async function refreshChats(): Promise<void> {
  if (!session) return;
  try {
    chats = await api.listChats(session);
    for (const chat of chats) chatMeta.set(chat.chat_id, metaFromList(chat));
    renderChats();
    markOpenChatRead();
    showBanner('');
  } catch (err) {
    showBanner(errorText(err));
  }
}

/** Answers to older searches are dropped: only the latest term's result is shown. */
let searchSeq = 0;

async function refreshUsers(): Promise<void> {
  if (!session) return;
  const seq = ++searchSeq;
  // The server matches username prefixes; usernames are lowercase, so the term is too.
  const term = search.value.trim().toLowerCase();
  try {
    const found = await api.searchUsers(session, term);
    if (seq !== searchSeq) return;
    users = found;
    renderUsers();
  } catch (err) {
    if (seq !== searchSeq) return;
    // A search-only directory ([auth.directory] mode = "search") says how much to type.
    if (err instanceof api.ApiError && err.code === 'query_too_short') {
      users = [];
      replace(userList, h('li', { class: 'empty' }, err.message));
      return;
    }
    showBanner(errorText(err));
  }
}

async function refreshStats(): Promise<void> {
  try {
    const s = await api.stats();
    const ratio = s.groups_written > 0 ? `${s.messages_per_group.toFixed(1)} messages per write` : 'no writes yet';
    statsLine.textContent = `${s.messages_sent} messages sent · ${s.groups_written} documents written · ${ratio}`;
  } catch {
    statsLine.textContent = '';
  }
}

async function startChat(user: User): Promise<void> {
  if (!session) return;
  try {
    const chat = await api.startChat(session, user.id);
    if (!chats.some((c) => c.chat_id === chat.chat_id)) chats.unshift(chat);
    openChat(chat);
  } catch (err) {
    showBanner(errorText(err));
  }
}

/** The server's realtime path for messages, once per session (the events stream if it cannot say). */
async function startRealtime(me: Session): Promise<void> {
  try {
    const { config, clockOffsetMs } = await api.clientConfig();
    if (session !== me) return;
    realtime = createRealtime(config, me, clockOffsetMs);
  } catch (err) {
    if (session !== me) return;
    showBanner(`${errorText(err)} New messages come through the events stream.`);
    realtime = null;
  }
  document.body.dataset.realtime = realtime?.mode ?? 'sse';
}

/** How long the first page waits for the events stream before reading the lists anyway. */
const FIRST_READY_WAIT_MS = 3000;

/**
 * Opens the person's events stream; resolves once it is open (or after a short wait), so the
 * chat list and history read after it miss nothing: what arrives meanwhile is merged.
 */
function startLive(me: Session): Promise<void> {
  let opened: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    opened = resolve;
    window.setTimeout(resolve, FIRST_READY_WAIT_MS);
  });
  live = new LiveStream(me, {
    onReady: () => {
      liveUp = true;
      current?.setLive(true);
      opened();
    },
    onMessage: (message) => onLiveMessage(message),
    onChat: (chat) => {
      if (!chats.some((c) => c.chat_id === chat.chat_id)) {
        chats.unshift(chat);
        renderChats();
      }
    },
    onRead: (read: ReadMark) => {
      const meta = chatMeta.get(read.chat_id);
      if (meta && (meta.latest === null || !later(meta.latest, read.read_up_to))) {
        meta.unread = 0;
        meta.capped = false;
        renderChats();
      }
    },
    onTyping: (notice: Typing) => {
      if (notice.user_id !== me.id && current?.chatId === notice.chat_id) current.showTyping();
    },
    onRevoked: () => logOut('You were logged out (from another device, or your password changed).'),
    onReset: () => {
      void refreshChats();
      current?.reloadLatest();
    },
    onDown: (error) => {
      liveUp = false;
      current?.setLive(false, error);
    },
  });
  live.start();
  return ready;
}

/** A message of one of the person's chats, as soon as it was sent. */
function onLiveMessage(message: Message): void {
  const chat = chats.find((c) => c.chat_id === message.chat_id);
  if (!chat) {
    // A chat started through another server: the list has it now.
    void refreshChats().then(() => onLiveMessage(message));
    return;
  }
  const meta = chatMeta.get(chat.chat_id) ?? { preview: '', unread: 0, capped: false, latest: null };
  const open = current?.chatId === chat.chat_id;
  // A message the list already counted (sent while the list was read) counts once.
  if (later(message.time, meta.latest)) {
    meta.latest = message.time;
    meta.preview = message.body.slice(0, 80);
    if (message.from_user === session?.id) meta.unread = 0; // answering a chat reads it
    else if (!open) meta.unread += 1;
  }
  chatMeta.set(chat.chat_id, meta);
  const recent = recentLive.get(chat.chat_id) ?? [];
  recent.push(message);
  if (recent.length > RECENT_LIVE) recent.splice(0, recent.length - RECENT_LIVE);
  recentLive.set(chat.chat_id, recent);
  chat.last_activity = message.time_iso;
  if (open) {
    current?.addLive([message]);
    markOpenChatRead();
  }
  bumpChat(chat.chat_id, true);
}

function openChat(chat: Chat): void {
  if (!session) return;
  const meta = chatMeta.get(chat.chat_id);
  if (meta) {
    meta.unread = 0;
    meta.capped = false;
  }
  if (current?.chatId === chat.chat_id) {
    renderChats();
    markOpenChatRead();
    return;
  }
  current?.close();
  current = new ChatView(session, chat.chat_id, peerOf(chat), realtime, {
    onError: showBanner,
    onSent: (message: Message) => bumpChat(message.chat_id),
  });
  current.setLive(liveUp);
  current.addLive(recentLive.get(chat.chat_id) ?? []);
  replace(pane, current.element);
  history.replaceState(null, '', `#/chats/${chat.chat_id}`);
  document.body.classList.add('in-chat');
  renderChats();
  markOpenChatRead();
  current.focus();
}

function bumpChat(chatId: string, redraw = false): void {
  const index = chats.findIndex((c) => c.chat_id === chatId);
  if (index > 0) {
    const [chat] = chats.splice(index, 1);
    chats.unshift(chat);
  }
  if (index > 0 || redraw) renderChats();
}

async function home(): Promise<void> {
  if (!session) return authScreen();
  const me = session;
  const back = h('button', { class: 'ghost back', on: { click: () => document.body.classList.remove('in-chat') } }, '← Chats');
  replace(pane, h('div', { class: 'placeholder' },
    h('h2', {}, `Hello, ${me.username}`),
    h('p', {}, 'Open a chat on the left, or search for a user to start one.')));
  replace(root,
    h('header', { class: 'top' },
      back,
      h('strong', { class: 'brand' }, 'confab'),
      statsLine,
      h('span', { class: 'me' }, me.username),
      h('a', { class: 'ghost', href: '/docs/', title: 'The HTTP API, and a page to try it' }, 'API'),
      h('button', { class: 'ghost', title: 'A single-use code for someone to sign up with', on: { click: () => void invite() } }, 'Invite'),
      h('button', { class: 'ghost', on: { click: () => logOut() } }, 'Log out')),
    banner,
    h('main', { class: 'layout' },
      h('aside', { class: 'sidebar' },
        h('h2', {}, 'My chats'), chatList,
        h('h2', {}, 'Users'), search, userList),
      pane));
  showBanner('');
  let debounce = 0;
  search.oninput = () => {
    clearTimeout(debounce);
    debounce = window.setTimeout(() => void refreshUsers(), 150);
  };
  // Before the chat list shows, so every chat opens with it; the events stream before the
  // lists are read, so nothing sent in between is missed.
  await Promise.all([startRealtime(me), startLive(me)]);
  await Promise.all([refreshChats(), refreshUsers(), refreshStats()]);
  timers.push(window.setInterval(() => void refreshStats(), 5000));
  const wanted = /^#\/chats\/([0-9a-f-]{36})$/.exec(location.hash)?.[1];
  const chat = chats.find((c) => c.chat_id === wanted);
  if (chat) openChat(chat);
}

void home();
