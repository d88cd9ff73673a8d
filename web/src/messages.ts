// The messages of one chat as the view shows them: unique by message_id (a message can arrive
// from the send response, the realtime stream and a history page), ordered by their TimeUUID.

import type { Message } from './api';

/** The 60-bit timestamp of a version-1 UUID (100 ns ticks since 1582), for ordering. */
export function timeuuidTicks(uuid: string): bigint {
  const hex = uuid.replace(/-/g, '');
  if (hex.length !== 32) return 0n;
  const low = BigInt(`0x${hex.slice(0, 8)}`);
  const mid = BigInt(`0x${hex.slice(8, 12)}`);
  const high = BigInt(`0x${hex.slice(12, 16)}`) & 0x0fffn;
  return (high << 48n) | (mid << 32n) | low;
}

/** 100 ns ticks between 1582-10-15 (the TimeUUID epoch) and 1970-01-01. */
const UNIX_EPOCH_TICKS = 0x01b21dd213814000n;

/** The instant of a version-1 UUID in ms since the Unix epoch (the aggregator's event time). */
export function timeuuidMs(uuid: string): number {
  return Number((timeuuidTicks(uuid) - UNIX_EPOCH_TICKS) / 10_000n);
}

function compare(a: Message, b: Message): number {
  const ta = timeuuidTicks(a.time);
  const tb = timeuuidTicks(b.time);
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.time < b.time ? -1 : a.time > b.time ? 1 : 0;
}

export class MessageStore {
  private readonly byId = new Map<string, Message>();
  private sorted: Message[] = [];

  /** Adds the messages not seen yet; returns how many were new. */
  add(messages: Message[]): number {
    let added = 0;
    for (const message of messages) {
      if (this.byId.has(message.message_id)) continue;
      this.byId.set(message.message_id, message);
      added += 1;
    }
    if (added > 0) this.sorted = [...this.byId.values()].sort(compare);
    return added;
  }

  get all(): readonly Message[] {
    return this.sorted;
  }

  get size(): number {
    return this.byId.size;
  }
}
