"""The seeded chat workload every system under test reads: the same messages, in the same order.

The seed fixes who writes what to whom and in which order (message ids, chats, senders, bodies);
only `time` and `time_iso` are stamped when a message is produced, as the seed's chat service did
(it set `time` to a fresh TimeUUID on every POST). A pre-filled backlog gets evenly spaced times
from the moment the fill started, so that it looks like traffic that arrived while the
aggregator was down; a paced run gets the wall-clock time of each send.

Traffic shape: a fixed set of 1:1 chats between users; chat popularity follows a Zipf law; a
chat's messages come in sessions of a few turns in which the two members alternate (a reply with
`reply_probability`, otherwise the same sender again), and `active_sessions` sessions interleave
in the log at any moment, as concurrent conversations do.
"""

from __future__ import annotations

import bisect
import datetime
import itertools
import json
import random
import uuid
from dataclasses import asdict, dataclass

# 100-ns intervals between the Gregorian epoch of UUID v1 (1582-10-15) and the Unix epoch.
GREGORIAN_OFFSET_TICKS = 0x01B21DD213814000
UNIX_EPOCH = datetime.datetime(1970, 1, 1)

WORDS = (
    "hey are we still on for lunch tomorrow at noon sure sounds good see you there "
    "did you read the report I sent can you call me later running late sorry "
    "what time does the game start ok thanks great idea let me check my calendar"
).split()


@dataclass(frozen=True)
class Spec:
    """The shape of the workload; the same Spec always yields the same messages."""

    seed: int = 42
    users: int = 2_000
    chats: int = 5_000
    active_sessions: int = 64
    mean_session_messages: float = 12.0
    reply_probability: float = 0.6
    chat_popularity_exponent: float = 1.0
    body_min_chars: int = 20
    body_max_chars: int = 80

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Message:
    """A message before it is stamped with its time."""

    message_id: str
    chat_id: str
    from_user: str
    to_user: str
    body: str


def generate(spec: Spec, count: int) -> list[Message]:
    """The first `count` messages of the workload (a longer run extends a shorter one)."""
    rng = random.Random(spec.seed)
    rand_uuid = lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))  # noqa: E731
    # User ids are short decimal strings, as the seed's auth service handed them out.
    members = []
    for _ in range(spec.chats):
        a, b = rng.sample(range(1, spec.users + 1), 2)
        members.append((str(a), str(b)))
    chat_ids = [rand_uuid() for _ in range(spec.chats)]
    cumulative = list(
        itertools.accumulate(1.0 / (rank + 1) ** spec.chat_popularity_exponent for rank in range(spec.chats))
    )

    def new_session() -> list:
        chat = bisect.bisect_left(cumulative, rng.random() * cumulative[-1])
        length = max(1, round(rng.expovariate(1.0 / spec.mean_session_messages)))
        return [chat, rng.randrange(2), length]  # chat, index of the sender, messages left

    def body() -> str:
        target = rng.randint(spec.body_min_chars, spec.body_max_chars)
        words: list[str] = []
        while sum(map(len, words)) + len(words) < target:
            words.append(rng.choice(WORDS))
        return " ".join(words)[:target]

    sessions = [new_session() for _ in range(spec.active_sessions)]
    out = []
    for _ in range(count):
        slot = rng.randrange(spec.active_sessions)
        session = sessions[slot]
        chat, sender, _left = session
        a, b = members[chat]
        from_user, to_user = (a, b) if sender == 0 else (b, a)
        out.append(Message(rand_uuid(), chat_ids[chat], from_user, to_user, body()))
        if rng.random() < spec.reply_probability:
            session[1] = 1 - sender
        session[2] -= 1
        if session[2] == 0:
            sessions[slot] = new_session()
    return out


def timeuuid(ticks: int, clock_seq: int = 0x1234, node: int = 0x02_00_5E_10_00_01) -> str:
    """A version-1 TimeUUID for `ticks` 100-ns intervals since the Unix epoch."""
    t = ticks + GREGORIAN_OFFSET_TICKS
    fields = (t & 0xFFFFFFFF, (t >> 32) & 0xFFFF, (t >> 48) & 0x0FFF, (clock_seq >> 8) & 0x3F, clock_seq & 0xFF, node)
    return str(uuid.UUID(fields=fields, version=1))


def encode(message: Message, ticks: int) -> bytes:
    """The JSON the seed's chat service produced (its MessageSchema's field order), stamped with
    `ticks` (100-ns intervals since the Unix epoch) as `time` and as `time_iso` (naive UTC with
    microseconds, the seed's uuid1_time_to_datetime(...).isoformat())."""
    iso = (UNIX_EPOCH + datetime.timedelta(microseconds=ticks // 10)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return json.dumps(
        {
            "message_id": message.message_id,
            "from_user": message.from_user,
            "to_user": message.to_user,
            "body": message.body,
            "chat_id": message.chat_id,
            "time": timeuuid(ticks),
            "time_iso": iso,
        },
        separators=(",", ":"),
    ).encode()


def ideal_groups(
    messages: list[Message],
    max_messages: int,
    gap_us: int,
    timeout_ms: int = 3000,
    times_ms: list[int] | None = None,
    epoch_ms: int = 0,
) -> int:
    """Groups a `(from_user, chat_id)` policy of `max_messages` or `timeout_ms` of inactivity
    writes when groups are cut by event time, as the log says: a key's group ends when it holds
    `max_messages`, or when the key's next message comes `timeout_ms` or more after its last one.
    The fewest the seed's policy can write for this workload. Message `i` is stamped `i * gap_us`
    into the backlog (the prefill's stamping), or at `times_ms[i]` when given. With `epoch_ms`, a
    group also ends where its key's messages cross a multiple of it (confab's commit epochs, which
    depend on the absolute times of a run)."""
    # key -> (messages in its open group, time of its last message, epoch of its first)
    open_groups: dict[tuple[str, str], tuple[int, float, int]] = {}
    groups = 0
    for i, m in enumerate(messages):
        at = times_ms[i] if times_ms is not None else i * gap_us / 1000
        epoch = int(at // epoch_ms) if epoch_ms else 0
        key = (m.from_user, m.chat_id)
        count, last, first_epoch = open_groups.get(key, (max_messages, -1e18, epoch))
        if count >= max_messages or at - last >= timeout_ms or epoch != first_epoch:
            groups += 1
            count, first_epoch = 0, epoch
        open_groups[key] = (count + 1, at, first_epoch)
    return groups
