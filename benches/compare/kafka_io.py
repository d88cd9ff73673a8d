"""Talking to the local Kafka for the driver: fresh topics, producing the workload (as a backlog
or at a fixed rate), and collecting the grouped output with its record timestamps.

confluent-kafka (librdkafka) rather than Kafka's console tools: the driver needs each record's
partition, offset and timestamp, a paced producer, and a consumer that can pause, without a JVM
of its own competing for the two cores.
"""

from __future__ import annotations

import threading
import time

import orjson

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import workload


_admins: dict[str, AdminClient] = {}


def admin(brokers: str) -> AdminClient:
    # One client per broker for the whole run: a client dropped while requests are pending
    # fails their futures.
    if brokers not in _admins:
        _admins[brokers] = AdminClient({"bootstrap.servers": brokers})
    return _admins[brokers]


def check_broker(brokers: str) -> None:
    try:
        admin(brokers).list_topics(timeout=5)
    except KafkaException as e:
        raise SystemExit(f"cannot reach Kafka at {brokers} ({e}): start it with scripts/infra up kafka")


def create_topics(brokers: str, names: list[str], partitions: int) -> None:
    client = admin(brokers)
    for future in client.create_topics([NewTopic(n, partitions, 1) for n in names], operation_timeout=30).values():
        future.result()
    # Metadata reaches the broker's caches a moment after creation; wait until both are visible.
    deadline = time.time() + 30
    while time.time() < deadline:
        topics = client.list_topics(timeout=5).topics
        if all(n in topics and len(topics[n].partitions) == partitions for n in names):
            return
        time.sleep(0.2)
    raise RuntimeError(f"topics {names} did not appear within 30 s")


def delete_topics(brokers: str, names: list[str]) -> None:
    client = admin(brokers)
    for future in client.delete_topics(names, operation_timeout=30).values():
        try:
            future.result()
        except KafkaException:
            pass  # already gone: nothing to clean up


def delete_group(brokers: str, group: str) -> None:
    try:
        admin(brokers).delete_consumer_groups([group], request_timeout=10)[group].result()
    except KafkaException:
        pass  # never created (the system failed early) or still shutting down: nothing to keep


def group_is_consuming(brokers: str, group: str) -> bool:
    """Whether `group` is stable with at least one member holding partitions."""
    client = admin(brokers)
    try:
        description = client.describe_consumer_groups([group])[group].result()
    except KafkaException:
        return False
    return str(description.state).endswith("STABLE") and any(
        m.assignment and m.assignment.topic_partitions for m in description.members
    )


class Placement:
    """Where each produced message landed: message_id -> (partition, offset, produce time ms),
    and how long the broker took to acknowledge each (ms, as seen by the driver)."""

    def __init__(self) -> None:
        self.by_id: dict[str, tuple[int, int, int]] = {}
        self.ack_ms: list[float] = []
        self.errors: list[str] = []


def _producer(brokers: str, linger_ms: int) -> Producer:
    return Producer(
        {
            "bootstrap.servers": brokers,
            "acks": "all",
            "linger.ms": linger_ms,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 2_000_000,
            # Java's partitioner, as the chat service's Kafka client would use: the same
            # chat_id lands in the same partition whoever produces it.
            "partitioner": "murmur2_random",
        }
    )


def _produce(producer: Producer, placement: Placement, topic: str, m: workload.Message, ticks: int) -> None:
    value = workload.encode(m, ticks)
    timestamp_ms = ticks // 10_000
    while True:
        try:
            producer.produce(
                topic,
                value=value,
                key=m.chat_id.encode(),
                timestamp=timestamp_ms,
                on_delivery=lambda err, msg, mid=m.message_id: _deliver(placement, err, msg, mid),
            )
            return
        except BufferError:
            producer.poll(0.05)


def _deliver(placement: Placement, err, msg, message_id: str) -> None:
    if err is not None:
        placement.errors.append(str(err))
    else:
        produced_ms = msg.timestamp()[1]
        placement.by_id[message_id] = (msg.partition(), msg.offset(), produced_ms)
        placement.ack_ms.append(time.time() * 1000 - produced_ms)


def prefill(brokers: str, topic: str, messages: list[workload.Message], gap_us: int) -> tuple[Placement, float]:
    """Produces every message as fast as the broker takes them, stamped `gap_us` apart from now;
    returns where each landed and how long it took."""
    placement = Placement()
    producer = _producer(brokers, linger_ms=20)
    start = time.time()
    t0 = time.time_ns() // 100
    for i, m in enumerate(messages):
        _produce(producer, placement, topic, m, t0 + i * gap_us * 10)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("prefill: messages still unacknowledged after 120 s")
    if placement.errors:
        raise RuntimeError(f"prefill: {len(placement.errors)} produce errors, first: {placement.errors[0]}")
    return placement, time.time() - start


def produce_at_rate(brokers: str, topic: str, messages: list[workload.Message], rate: float) -> tuple[Placement, float]:
    """Produces `messages` at `rate` per second, each stamped with the wall-clock time it was
    handed to the client (its `time` field and its record timestamp); returns the achieved rate."""
    placement = Placement()
    producer = _producer(brokers, linger_ms=1)
    start = time.time()
    last_ticks = 0
    for i, m in enumerate(messages):
        due = start + i / rate
        while (pause := due - time.time()) > 0:
            producer.poll(pause)  # serves delivery callbacks while waiting; may return early
        ticks = max(time.time_ns() // 100, last_ticks + 1)  # TimeUUIDs stay unique and ordered
        last_ticks = ticks
        _produce(producer, placement, topic, m, ticks)
    elapsed = time.time() - start
    if producer.flush(60) != 0:
        raise RuntimeError("paced produce: messages still unacknowledged after 60 s")
    if placement.errors:
        raise RuntimeError(f"paced produce: {len(placement.errors)} errors, first: {placement.errors[0]}")
    return placement, len(messages) / elapsed


def messages_in(group) -> list:
    """The messages inside one grouped record: a bare JSON list, or an object holding the list
    (the seed's `list_of_messages`, or `messages` / `records`)."""
    if isinstance(group, list):
        return group
    if isinstance(group, dict):
        for field in ("list_of_messages", "messages", "records"):
            if isinstance(group.get(field), list):
                return group[field]
    raise ValueError(f"grouped record holds no message list: {str(group)[:200]}")


class Collector(threading.Thread):
    """Reads the grouped topic from its beginning, in the pauses of the system under test.

    For every grouped record it keeps the record timestamp (set by the system's producer when it
    wrote the group) and the ids inside; `done` is set once `expected` distinct ids were seen.

    The measurements come from those timestamps, not from when the driver read a record, so the
    driver need not read while the system writes: it did, and on the two cores it shares with the
    system and the broker it took 0.5-0.6 of a core from a system that finishes a million messages
    in 3 s (`driver_cpu_s` was 3.0-3.2 s in such a run), against a tenth of that from a system
    ten times slower. So the partitions stay paused (librdkafka fetches nothing for them) while
    their end offsets move; once they have not moved for `quiet_s`, everything up to them is read,
    each record kept and its `"message_id"` keys counted (a scan in C), and the partitions are
    paused again. Records are decoded once the count reaches the expected number, and at the end.
    A system writes nothing for 3 s before its last groups (the seed's inactivity timeout), so the
    output is read there and after the last group, while the system is idle.
    """

    def __init__(self, brokers: str, topic: str, partitions: int, expected: set[str], quiet_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.expected = expected
        self.records: list[tuple[int, list[str]]] = []  # (timestamp ms, message ids)
        self.seen: set[str] = set()
        self.duplicates = 0
        self.unknown = 0
        self.undecodable: list[str] = []
        # Message ids counted in the records read so far (decoded or not).
        self.counted = 0
        self._raw: list[tuple[int, bytes]] = []  # records read, not decoded yet
        self.done = threading.Event()
        self._halt = threading.Event()
        self._quiet_s = quiet_s
        self._partitions = [TopicPartition(topic, p, 0) for p in range(partitions)]
        # The next offset to read, per partition.
        self._next = {p: 0 for p in range(partitions)}
        self._consumer = Consumer(
            {
                "bootstrap.servers": brokers,
                "group.id": f"{topic}-driver",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        # Assigned, not subscribed: a fresh topic read from offset 0 needs no group rebalance.
        self._consumer.assign(self._partitions)
        self._consumer.pause(self._partitions)

    def _ends(self) -> dict[int, int]:
        """Each partition's end offset, asked of the broker (a request per partition)."""
        return {
            tp.partition: self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)[1]
            for tp in self._partitions
        }

    def _read_to(self, ends: dict[int, int]) -> None:
        """Reads every partition up to `ends`, then pauses them again."""
        self._consumer.resume(self._partitions)
        try:
            while not self._halt.is_set() and any(self._next[p] < end for p, end in ends.items()):
                records = self._consumer.consume(num_messages=1000, timeout=0.1)
                for record in records:
                    if record.error():
                        continue
                    self._next[record.partition()] = record.offset() + 1
                    value = record.value()
                    self._raw.append((record.timestamp()[1], value))
                    self.counted += value.count(b'"message_id"')
                if not records:
                    # The consumer's own positions step over offsets that hold no record (a
                    # transaction's markers), which the records read would never reach.
                    for tp in self._consumer.position(self._partitions):
                        if tp.offset >= 0:
                            self._next[tp.partition] = max(self._next[tp.partition], tp.offset)
        finally:
            self._consumer.pause(self._partitions)

    def run(self) -> None:
        try:
            last, quiet_since = None, time.monotonic()
            while not self._halt.is_set() and not self.done.is_set():
                ends = self._ends()
                if ends != last:
                    last, quiet_since = ends, time.monotonic()
                elif time.monotonic() - quiet_since >= self._quiet_s and any(
                    self._next[p] < end for p, end in ends.items()
                ):
                    self._read_to(ends)
                    if self.counted >= len(self.expected):
                        self._decode()
                        if self.expected <= self.seen:
                            self.done.set()
                self._halt.wait(0.1)
        finally:
            self._decode()
            self._consumer.close()

    def _decode(self) -> None:
        for timestamp_ms, value in self._raw:
            self._take(timestamp_ms, value)
        self._raw.clear()

    def _take(self, timestamp_ms: int, value: bytes) -> None:
        try:
            ids = [m["message_id"] for m in messages_in(orjson.loads(value))]
        except (ValueError, KeyError, TypeError) as e:
            self.undecodable.append(f"{e}: {value[:120]!r}")
            return
        self.records.append((timestamp_ms, ids))
        for message_id in ids:
            if message_id in self.seen:
                self.duplicates += 1
            elif message_id in self.expected:
                self.seen.add(message_id)
            else:
                self.unknown += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
