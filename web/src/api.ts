// The HTTP APIs of `confab up` (auth and chat services on the same origin), with every failure
// turned into an ApiError whose message a person can act on.

/**
 * A login session. Its fields are updated in place when the access token is refreshed, so every
 * holder of the object sends the current token.
 */
export interface Session {
  token: string;
  id: string;
  username: string;
  /** When the access token expires (ms since the epoch, this clock). */
  expiresAt: number;
  /** Exchanged once at /api/v1/auth/refresh for a new pair. */
  refreshToken: string;
  /** When the session itself ends (ms since the epoch). */
  refreshExpiresAt: number;
}

export interface User {
  id: string;
  username: string;
}

export interface Chat {
  chat_id: string;
  members: User[];
  created_at: string;
  last_activity: string;
  /** In the chat list: the chat's latest message. */
  last_message?: Message;
  /** In the chat list: the `time` of the newest message the person has read. */
  read_up_to?: string;
  /** In the chat list: the other member's messages not read yet (at most 99). */
  unread?: number;
  unread_capped?: boolean;
}

/** A `read` event: the person marked a chat read on one of their pages or devices. */
export interface ReadMark {
  chat_id: string;
  read_up_to: string;
}

/** Where a version-1 TimeUUID sorts: its 60-bit timestamp. */
export function timeOrder(time: string): bigint {
  const [low, mid, high] = time.split('-');
  return (BigInt(`0x${high}`) & 0xfffn) << 48n | BigInt(`0x${mid}`) << 32n | BigInt(`0x${low}`);
}

export interface Message {
  message_id: string;
  chat_id: string;
  from_user: string;
  to_user: string;
  body: string;
  time: string;
  time_iso: string;
}

export interface MessagePage {
  messages: Message[];
  next_cursor: string | null;
}

/** A typing notice from the person's events stream. */
export interface Typing {
  chat_id: string;
  user_id: string;
  /** Server time (ms since the epoch) the notice was received. */
  at_ms: number;
}

export interface Stats {
  messages_sent: number;
  groups_written: number;
  messages_per_group: number;
  open_groups: number;
  since: string;
}

/** Where the browser listens to Firestore (GET /api/v1/config with realtime = firestore). */
export interface FirestoreSettings {
  project_id: string;
  database_id: string;
  collection: string;
  /** host:port of the emulator; absent for a real project. */
  emulator_host?: string;
  /** A real project's web API key. */
  api_key?: string;
  auth_domain?: string;
}

/** How this server delivers new messages to the browser. */
export type ClientConfig = { realtime: 'sse' } | { realtime: 'firestore'; firestore: FirestoreSettings };

/** The token to sign in to Firebase with (POST /api/v1/auth/firebase-token). */
export interface FirebaseToken {
  token: string;
  /** true: an unsigned emulator token (mockUserToken); false: a custom token. */
  emulator: boolean;
  uid: string;
  project_id: string;
  expires_in: number;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

const SESSION_KEY = 'confab.session';

export function loadSession(): Session | null {
  try {
    const raw = sessionStorage.getItem(SESSION_KEY);
    if (!raw) return null;
    const session = JSON.parse(raw) as Session;
    return session.refreshToken && session.refreshExpiresAt > Date.now() ? session : null;
  } catch {
    return null;
  }
}

export function saveSession(session: Session | null): void {
  if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(SESSION_KEY);
}

/** Called when a request was refused for an expired or invalid token. */
let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

/** " Try again in 12 s." (or minutes) from Retry-After, or a plain hint without one. */
function retryAfterText(response: Response): string {
  const seconds = Number(response.headers.get('Retry-After'));
  if (!Number.isFinite(seconds) || seconds <= 0) return ' Try again shortly.';
  return seconds > 90 ? ` Try again in ${Math.ceil(seconds / 60)} min.` : ` Try again in ${Math.ceil(seconds)} s.`;
}

/** The server's message as a sentence, without its own "try again later" (we say when). */
function sentence(text: string): string {
  const trimmed = text.replace(/[;,.]?\s*(please )?try again later\.?$/i, '').trim();
  if (!trimmed) return '';
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

async function request<T>(
  method: string,
  path: string,
  options: { body?: unknown; session?: Session | null } = {},
): Promise<T> {
  return (await requestWithHeaders<T>(method, path, options)).body;
}

interface TokenPair {
  access_token: string;
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
  id: string;
  username: string;
}

function sessionOf(r: TokenPair): Session {
  const now = Date.now();
  return {
    token: r.access_token,
    id: r.id,
    username: r.username,
    expiresAt: now + r.expires_in * 1000,
    refreshToken: r.refresh_token,
    refreshExpiresAt: now + r.refresh_expires_in * 1000,
  };
}

/** The refresh in flight, so concurrent requests share one (a refresh token works once). */
let refreshing: Promise<boolean> | null = null;

/** Exchanges the refresh token for a new pair, in place; whether it worked. */
export function refresh(session: Session): Promise<boolean> {
  refreshing ??= (async () => {
    try {
      const response = await fetch('/api/v1/auth/refresh', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ refresh_token: session.refreshToken }),
      });
      if (!response.ok) return false;
      Object.assign(session, sessionOf((await response.json()) as TokenPair));
      saveSession(session);
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/** Refreshes the access token when it expires within a minute. */
export async function fresh(session: Session): Promise<void> {
  if (session.expiresAt - Date.now() < 60_000) await refresh(session);
}

async function requestWithHeaders<T>(
  method: string,
  path: string,
  options: { body?: unknown; session?: Session | null } = {},
  retried = false,
): Promise<{ body: T; headers: Headers }> {
  if (options.session) await fresh(options.session);
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (options.session) headers.Authorization = `Bearer ${options.session.token}`;
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch {
    throw new ApiError('Cannot reach the server. Is confab running? Retrying may help.', 0, 'network');
  }
  if (response.ok) {
    const body = response.status === 204 ? undefined : await response.json();
    return { body: body as T, headers: response.headers };
  }

  let code = 'error';
  let text = '';
  try {
    const body = (await response.json()) as { error?: string; message?: string };
    code = body.error ?? code;
    text = body.message ?? '';
  } catch {
    // Not our JSON: a proxy or a server that is going away.
  }
  if (response.status === 429) {
    throw new ApiError(`${sentence(text) || 'Too many requests.'}${retryAfterText(response)}`, 429, code);
  }
  if (response.status === 401 && options.session) {
    // Expired early (a clock ahead of ours) or revoked: one refresh decides which.
    if (!retried && (await refresh(options.session))) {
      return requestWithHeaders<T>(method, path, options, true);
    }
    onUnauthorized();
    throw new ApiError('Your session has expired. Please log in again.', 401, code);
  }
  if (response.status === 401) {
    throw new ApiError('Wrong username or password.', 401, code);
  }
  if (response.status >= 500 || !text) {
    const hint = response.status === 503 ? retryAfterText(response) : '';
    throw new ApiError(
      `The server could not do that (${response.status}${text ? `: ${text}` : ''}).${hint}`,
      response.status,
      code,
    );
  }
  throw new ApiError(sentence(text), response.status, code);
}

/** Signs up; `invite` is the code a member created, on a server where sign-up needs one. */
export async function signUp(username: string, password: string, invite?: string): Promise<User> {
  const body: Record<string, string> = { username, password };
  if (invite) body.invite = invite;
  return request<User>('POST', '/api/v1/users', { body });
}

/** The people this person blocked. */
export async function blockedIds(session: Session): Promise<Set<string>> {
  const list = await request<{ blocks: { user_id: string }[] }>('GET', '/api/v1/blocks', { session });
  return new Set(list.blocks.map((b) => b.user_id));
}

/** Blocks or unblocks a person: blocked, neither can start a chat with or write to the other. */
export async function setBlocked(session: Session, userId: string, blocked: boolean): Promise<void> {
  if (blocked) await request('POST', '/api/v1/blocks', { session, body: { user_id: userId } });
  else await request('DELETE', `/api/v1/blocks/${encodeURIComponent(userId)}`, { session });
}

/** A single-use invite code for someone to sign up with (servers in invite mode). */
export async function createInvite(session: Session): Promise<{ code: string; expires_at: string }> {
  return request('POST', '/api/v1/invites', { session });
}

export async function logIn(username: string, password: string): Promise<Session> {
  return sessionOf(await request<TokenPair>('POST', '/api/v1/login', { body: { username, password } }));
}

/** Revokes the session on the server (its streams end there too); best effort. */
export async function logOutSession(session: Session): Promise<void> {
  try {
    await fetch('/api/v1/auth/logout', { method: 'POST', headers: { Authorization: `Bearer ${session.token}` } });
  } catch {
    // Offline: the access token expires within minutes, and the refresh token is forgotten here.
  }
}

/**
 * Users whose username starts with `prefix` (every user when it is empty), in username order,
 * at most `limit`: the server searches, so the page never downloads the whole directory.
 */
export async function searchUsers(session: Session, prefix: string, limit = 50): Promise<User[]> {
  const query = new URLSearchParams({ limit: String(limit) });
  if (prefix) query.set('q', prefix);
  const page = await request<{ users: User[]; next_cursor?: string | null }>('GET', `/api/v1/users?${query}`, {
    session,
  });
  return page.users;
}

export async function listChats(session: Session): Promise<Chat[]> {
  const page = await request<{ chats: Chat[] }>('GET', '/api/v1/chats?limit=100', { session });
  return page.chats;
}

/** Marks a chat read up to the message with this `time` (the server keeps the later of two). */
export async function markRead(session: Session, chatId: string, time: string): Promise<void> {
  await request<unknown>('PUT', `/api/v1/chats/${encodeURIComponent(chatId)}/read`, { body: { time }, session });
}

export async function startChat(session: Session, peerId: string): Promise<Chat> {
  return request<Chat>('POST', '/api/v1/chats', { body: { peer_id: peerId }, session });
}

/** A page of history, newest first, strictly older than `before` when given. */
export async function history(session: Session, chatId: string, quantity: number, before?: string): Promise<MessagePage> {
  const query = new URLSearchParams({ quantity: String(quantity) });
  if (before) query.set('time', before);
  return request<MessagePage>('GET', `/api/v1/chats/${encodeURIComponent(chatId)}/messages?${query}`, { session });
}

export async function send(session: Session, chatId: string, body: string, clientMessageId: string): Promise<Message> {
  return request<Message>('POST', `/api/v1/chats/${encodeURIComponent(chatId)}/messages`, {
    body: { body, client_message_id: clientMessageId },
    session,
  });
}

export async function stats(): Promise<Stats> {
  return request<Stats>('GET', '/api/v1/stats');
}

/**
 * The realtime settings, and how far the server's clock is ahead of this one (ms, from the
 * response's Date header; 0 without one), so queries by server time work on a wrong clock.
 */
export async function clientConfig(): Promise<{ config: ClientConfig; clockOffsetMs: number }> {
  const started = Date.now();
  const { body, headers } = await requestWithHeaders<ClientConfig>('GET', '/api/v1/config');
  const serverNow = Date.parse(headers.get('Date') ?? '');
  const clockOffsetMs = Number.isFinite(serverNow) ? serverNow - (started + Date.now()) / 2 : 0;
  return { config: body, clockOffsetMs };
}

export async function firebaseToken(session: Session): Promise<FirebaseToken> {
  return request<FirebaseToken>('POST', '/api/v1/auth/firebase-token', { session });
}

/**
 * Opens the person's events stream (GET /api/v1/events): every chat's messages as they are
 * sent, new chats, typing notices. Read with fetch, so the token travels in a header, never in
 * the URL; `lastEventId` resumes after that event. Resolves to the open response, or throws an
 * ApiError (401 logs out, 429 and 503 say when to retry).
 */
export async function openEvents(session: Session, lastEventId: string | null, signal: AbortSignal): Promise<Response> {
  await fresh(session);
  const headers: Record<string, string> = { Accept: 'text/event-stream', Authorization: `Bearer ${session.token}` };
  if (lastEventId) headers['Last-Event-ID'] = lastEventId;
  let response: Response;
  try {
    response = await fetch('/api/v1/events', { headers, signal, cache: 'no-store' });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new ApiError('Cannot reach the server. Is confab running? Retrying may help.', 0, 'network');
  }
  if (response.ok && response.body) return response;
  let text = '';
  try {
    text = ((await response.json()) as { message?: string }).message ?? '';
  } catch {
    // Not our JSON.
  }
  if (response.status === 401) {
    if (await refresh(session)) throw new ApiError('The access token was renewed; reconnecting.', 0, 'renewed');
    onUnauthorized();
    throw new ApiError('Your session has expired. Please log in again.', 401, 'unauthorized');
  }
  throw new ApiError(`${sentence(text) || `The events stream failed (${response.status}).`}`, response.status, 'events');
}

/** Tells the chat's other member that this person is typing (best effort). */
export async function typing(session: Session, chatId: string): Promise<void> {
  await fresh(session);
  await fetch(`/api/v1/chats/${encodeURIComponent(chatId)}/typing`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${session.token}` },
  });
}
