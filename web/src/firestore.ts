// Realtime through Firestore: the Firebase JS SDK (loaded only on this path) listens to the
// group documents the aggregator's Firestore sink writes, one per group of a chat's messages.
//
// Sign-in: the auth service mints the token (POST /api/v1/auth/firebase-token) for the confab
// user id. A real project exchanges it with signInWithCustomToken (kept in memory only: the
// confab session decides who is signed in); the emulator takes it as connectFirestoreEmulator's
// mockUserToken.
//
// The query is the one firestore.rules can prove safe (chat_id == X and members
// array-contains uid), limited to groups whose latest message is newer than the newest one the
// view already has from history: opening a long chat downloads none of its past, and a group
// still in flight when the history page was read is caught whenever it is written. A real
// project needs the composite index in firestore.indexes.json for it.

import { deleteApp, initializeApp } from 'firebase/app';
import {
  collection, connectFirestoreEmulator, initializeFirestore, onSnapshot, query, setLogLevel, where,
} from 'firebase/firestore';
import * as api from './api';
import type { FirestoreSettings, Message, Session } from './api';
import { firestoreErrorText, type RealtimeHandlers } from './realtime';

/** How long the first answer may take before the person is told Firestore cannot be reached. */
const UNREACHABLE_MS = 10_000;

export interface FirestoreConnection {
  /**
   * Listens to the chat's groups whose latest message is later than `afterMs` (ms since the
   * epoch). `failed` is called once if the listener ends with an error (listen again then).
   */
  listen(chatId: string, afterMs: number, handlers: RealtimeHandlers, failed: (err: unknown) => void): () => void;
  /** Signs out and releases the SDK's connection. */
  close(): Promise<void>;
}

let apps = 0;

export async function connectFirestore(session: Session, settings: FirestoreSettings): Promise<FirestoreConnection> {
  // The SDK's own retries are reported through the view's status, not the console.
  setLogLevel('error');
  const token = await api.firebaseToken(session);
  if (token.emulator !== Boolean(settings.emulator_host)) {
    throw new Error(
      token.emulator
        ? 'the server minted an emulator token but configured a real Firebase project'
        : 'the server minted a custom token but configured the Firestore emulator',
    );
  }
  apps += 1;
  const app = initializeApp(
    { projectId: settings.project_id, apiKey: settings.api_key, authDomain: settings.auth_domain },
    `confab-${apps}`,
  );
  let signOut = async (): Promise<void> => {};
  try {
    if (!token.emulator) {
      const auth = await import('firebase/auth');
      const firebaseAuth = auth.initializeAuth(app, { persistence: auth.inMemoryPersistence });
      await auth.signInWithCustomToken(firebaseAuth, token.token);
      signOut = () => auth.signOut(firebaseAuth);
    }
    const db = initializeFirestore(app, {}, settings.database_id);
    if (token.emulator && settings.emulator_host) {
      const { host, port } = hostAndPort(settings.emulator_host);
      connectFirestoreEmulator(db, host, port, { mockUserToken: token.token });
    }
    const groups = collection(db, settings.collection);
    return {
      listen(chatId, afterMs, handlers, failed) {
        const recent = query(
          groups,
          where('chat_id', '==', chatId),
          where('members', 'array-contains', token.uid),
          where('last_time_ms', '>', afterMs),
        );
        let live = false;
        const unreachable = () => handlers.onDown(firestoreErrorText({ code: 'unavailable' }, settings));
        let timer = window.setTimeout(unreachable, UNREACHABLE_MS);
        const stop = onSnapshot(recent, { includeMetadataChanges: true }, (snapshot) => {
          const messages: Message[] = [];
          for (const change of snapshot.docChanges()) {
            if (change.type !== 'removed') messages.push(...messagesOf(change.doc.data(), chatId));
          }
          if (messages.length > 0) handlers.onMessages(messages);
          if (!snapshot.metadata.fromCache) {
            if (!live) {
              live = true;
              clearTimeout(timer);
              handlers.onLive();
            }
          } else if (live) {
            // The SDK lost the server; it reconnects by itself.
            live = false;
            handlers.onDown();
            timer = window.setTimeout(unreachable, UNREACHABLE_MS);
          }
        }, (err) => {
          clearTimeout(timer);
          failed(err);
        });
        return () => {
          clearTimeout(timer);
          stop();
        };
      },
      async close() {
        await signOut().catch(() => {});
        await deleteApp(app);
      },
    };
  } catch (err) {
    await deleteApp(app).catch(() => {});
    throw err;
  }
}

function hostAndPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  const port = Number(address.slice(at + 1));
  if (at <= 0 || !Number.isInteger(port) || port <= 0) {
    throw new Error(`the emulator address ${address} is not host:port`);
  }
  return { host: address.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port };
}

/** The messages of a group document (connectors/src/firestore/document.rs), checked. */
function messagesOf(data: Record<string, unknown>, chatId: string): Message[] {
  const list = data.list_of_messages;
  if (!Array.isArray(list)) return [];
  const text = (value: unknown): value is string => typeof value === 'string';
  return list.filter((item: unknown): item is Message => {
    if (typeof item !== 'object' || item === null) return false;
    const m = item as Record<string, unknown>;
    return text(m.message_id) && m.chat_id === chatId && text(m.from_user) && text(m.to_user)
      && text(m.body) && text(m.time) && text(m.time_iso);
  });
}
