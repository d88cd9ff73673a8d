// The Firestore path for a chat's messages (GET /api/v1/config says `firestore`): the
// aggregator's group documents through the Firebase JS SDK, the seed's shape. The SDK is
// imported only on this path (./firestore.ts is its own chunk), so the default client, which
// gets messages from the person's events stream (live.ts), does not carry it. The chat view
// drops duplicates by message_id.

import * as api from './api';
import type { ClientConfig, FirestoreSettings, Message, Session } from './api';
import type { FirestoreConnection } from './firestore';

export type RealtimeMode = 'sse' | 'firestore';

export interface RealtimeHandlers {
  /**
   * The event time (ms since the epoch, server clock) of the newest message the view has from
   * history or realtime, or null if none: a listener that can replay (Firestore) starts after it.
   */
  since(): number | null;
  /** Messages of a group that was written (possibly seen before). */
  onMessages(messages: Message[]): void;
  /** The subscription is live: what was written before it is in history now. */
  onLive(): void;
  /** The connection is down and being retried; `error` is for the person when it needs saying. */
  onDown(error?: string): void;
  /** Messages may have been skipped: read the latest history page again. */
  onGap(): void;
}

export interface Subscription {
  close(): void;
}

export interface Realtime {
  readonly mode: RealtimeMode;
  /** Delivers the chat's new messages until the subscription is closed. */
  subscribe(chatId: string, handlers: RealtimeHandlers): Subscription;
  /** Ends every subscription and releases the connection (logout). */
  close(): void;
}

/**
 * Without a newest message (an empty chat, or history not read), how far back a Firestore
 * listener starts from the server's clock: about a group's time in flight, with slack.
 */
const LOOKBACK_MS = 60_000;

/** The backoff before the `attempt`th retry: 2 s, 4 s, ... up to 30 s. */
function backoff(attempt: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.min(attempt, 5));
}

/** The Firestore listener when the server asks for it; null for the events stream. */
export function createRealtime(config: ClientConfig, session: Session, clockOffsetMs: number): Realtime | null {
  if (config.realtime === 'firestore') return new FirestoreRealtime(session, config.firestore, clockOffsetMs);
  return null;
}

/** Firestore through the lazily loaded SDK; signs in once per session, retries with backoff. */
class FirestoreRealtime implements Realtime {
  readonly mode = 'firestore';
  private connection: Promise<FirestoreConnection> | null = null;
  private closed = false;

  constructor(
    private readonly session: Session,
    private readonly settings: FirestoreSettings,
    private readonly clockOffsetMs: number,
  ) {}

  private connect(): Promise<FirestoreConnection> {
    if (!this.connection) {
      const attempt = import('./firestore').then((m) => m.connectFirestore(this.session, this.settings));
      // A failed sign-in is tried again by the next subscription attempt, not cached.
      attempt.catch(() => {
        if (this.connection === attempt) this.connection = null;
      });
      this.connection = attempt;
    }
    return this.connection;
  }

  subscribe(chatId: string, handlers: RealtimeHandlers): Subscription {
    let closed = false;
    let retry = 0;
    let timer = 0;
    let unsubscribe: (() => void) | null = null;
    const failed = (err: unknown) => {
      if (closed || this.closed) return;
      unsubscribe?.();
      unsubscribe = null;
      retry += 1;
      const wait = backoff(retry);
      handlers.onDown(`${firestoreErrorText(err, this.settings)} Retrying in ${Math.round(wait / 1000)} s.`);
      timer = window.setTimeout(attempt, wait);
    };
    const attempt = () => {
      if (closed || this.closed) return;
      this.connect().then((connection) => {
        if (closed || this.closed) return;
        const after = handlers.since() ?? Date.now() + this.clockOffsetMs - LOOKBACK_MS;
        unsubscribe = connection.listen(chatId, after, {
          ...handlers,
          onLive: () => {
            retry = 0;
            handlers.onLive();
          },
        }, failed);
      }, failed);
    };
    attempt();
    return {
      close: () => {
        closed = true;
        clearTimeout(timer);
        unsubscribe?.();
      },
    };
  }

  close(): void {
    this.closed = true;
    const connection = this.connection;
    this.connection = null;
    connection?.then((c) => c.close()).catch(() => {});
  }
}

/** A sentence for the person: what failed, where, and whether waiting helps. */
export function firestoreErrorText(err: unknown, settings: FirestoreSettings): string {
  const where = settings.emulator_host ? `the Firestore emulator at ${settings.emulator_host}` : `Firestore (project ${settings.project_id})`;
  if (err instanceof api.ApiError) return `Realtime through Firestore is unavailable: ${err.message}`;
  const code = (err as { code?: string } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'permission-denied') return `${where} refused to show this chat (permission denied): are firestore.rules deployed?`;
  if (code === 'failed-precondition') return `${where} cannot run the chat's query: ${message}`;
  if (code === 'unavailable' || code === 'deadline-exceeded' || code === 'timeout') {
    return `Cannot reach ${where}: new messages show once it answers.`;
  }
  return `Realtime through ${where} failed: ${message}`;
}
