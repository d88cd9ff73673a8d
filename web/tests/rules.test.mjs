// firestore.rules on a Firestore emulator of its own, started with --rules on a free port, read
// through the Firebase JS SDK as the web client would: a chat member reads its group documents,
// a non-member and a signed-out client are denied, and no client can write.
//
//   node --test tests/rules.test.mjs      (needs gcloud with the Firestore emulator component)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  initializeTestEnvironment, assertFails, assertSucceeds,
} from '@firebase/rules-unit-testing';
import {
  doc, getDoc, setDoc, getDocs, collection, query, where, setLogLevel,
} from 'firebase/firestore';

const rulesFile = resolve(dirname(fileURLToPath(import.meta.url)), '../../firestore.rules');
const PROJECT = 'confab-rules-test';
let emulator;
let testEnv;

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

async function waitUntilServing(port, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (emulator.exitCode !== null) throw new Error(`the emulator exited with ${emulator.exitCode}`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the Firestore emulator did not answer on port ${port} within ${ms / 1000} s`);
}

before(async () => {
  setLogLevel('silent');
  const port = await freePort();
  // Its own process group, so that stopping it also stops the Java server gcloud starts.
  emulator = spawn('gcloud', ['emulators', 'firestore', 'start', `--host-port=127.0.0.1:${port}`,
    `--rules=${rulesFile}`], { detached: true, stdio: 'ignore' });
  emulator.once('error', (err) => assert.fail(`cannot start gcloud (is the Google Cloud CLI installed?): ${err.message}`));
  await waitUntilServing(port, 90_000);
  // No `rules` here: the emulator enforces the file it was started with.
  testEnv = await initializeTestEnvironment({ projectId: PROJECT, firestore: { host: '127.0.0.1', port } });
  await testEnv.withSecurityRulesDisabled(async (admin) => {
    // The shape the aggregator's Firestore sink writes (connectors/src/firestore/document.rs).
    await setDoc(doc(admin.firestore(), 'messages/group-1'), {
      chat_id: 'chat-1',
      from_user: 'alice-id',
      members: ['alice-id', 'bob-id'],
      list_of_messages: [{ message_id: 'm1', body: 'hello', from_user: 'alice-id', to_user: 'bob-id' }],
      message_count: 1,
      last_time_ms: 1_000,
    });
    await setDoc(doc(admin.firestore(), 'messages/group-2'), {
      chat_id: 'chat-2', from_user: 'carol-id', members: ['carol-id', 'dave-id'], message_count: 1,
    });
  });
});

after(async () => {
  await testEnv?.cleanup();
  if (emulator && emulator.exitCode === null) {
    const exited = new Promise((r) => emulator.once('exit', r));
    process.kill(-emulator.pid, 'SIGTERM');
    await exited;
  }
});

test('a member reads its chat\'s group documents, alone and by query', async () => {
  const bob = testEnv.authenticatedContext('bob-id').firestore();
  const snapshot = await assertSucceeds(getDoc(doc(bob, 'messages/group-1')));
  assert.equal(snapshot.data().chat_id, 'chat-1');
  const listened = query(collection(bob, 'messages'), where('chat_id', '==', 'chat-1'),
    where('members', 'array-contains', 'bob-id'));
  const results = await assertSucceeds(getDocs(listened));
  assert.deepEqual(results.docs.map((d) => d.id), ['group-1']);
  // The web client's listener also starts after the newest message it has (web/src/firestore.ts).
  const recent = query(listened, where('last_time_ms', '>', 999));
  assert.deepEqual((await assertSucceeds(getDocs(recent))).docs.map((d) => d.id), ['group-1']);
  const later = query(listened, where('last_time_ms', '>', 1_000));
  assert.equal((await assertSucceeds(getDocs(later))).size, 0);
});

test('a non-member and a signed-out client are denied', async () => {
  const mallory = testEnv.authenticatedContext('mallory-id').firestore();
  await assertFails(getDoc(doc(mallory, 'messages/group-1')));
  await assertFails(getDocs(query(collection(mallory, 'messages'), where('chat_id', '==', 'chat-1'))));
  const bob = testEnv.authenticatedContext('bob-id').firestore();
  await assertFails(getDocs(collection(bob, 'messages')), 'an unfiltered query would include others\' groups');
  const anonymous = testEnv.unauthenticatedContext().firestore();
  await assertFails(getDoc(doc(anonymous, 'messages/group-1')));
});

test('no client writes, not even a member', async () => {
  const alice = testEnv.authenticatedContext('alice-id').firestore();
  await assertFails(setDoc(doc(alice, 'messages/group-1'), { chat_id: 'chat-1', members: ['alice-id'] }));
  await assertFails(setDoc(doc(alice, 'messages/forged'), { chat_id: 'chat-1', members: ['alice-id'] }));
});
