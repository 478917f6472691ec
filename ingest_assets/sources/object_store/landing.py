"""Watching an object store for objects that land: the scan behind a dataset's landing sensor.

The store is listed in key order, in *passes*; a pass may take several ticks (each tick lists at
most a number of keys or seconds and remembers the last key, so the next tick resumes there with
``start_after``). Whether an object is new is decided by its version (key, ETag, write time), not
by its position in the listing, so keys that arrive late or out of order, and keys overwritten
(a new ETag or write time), are never skipped:

* A pass only looks at objects modified at or after its ``since`` mark: the start of the
  previous pass minus a margin (``lookback`` for uploads that become visible after their
  modification time, plus ``settle``). Anything older was listed, settled, by an earlier pass.
* The versions already requested that are recent enough to be listed again are remembered
  (8-byte digests) and not requested twice; older ones are forgotten as ``since`` moves on.
* An object modified less than ``settle`` seconds ago is left for a later pass.
* An object whose partition does not exist yet (the partition is still open) waits in the
  cursor, and is requested in the first tick after the partition exists.

The cursor is a JSON string (the sensor's cursor); a restart resumes from it. All new versions
of one partition found in one tick become one request, with a run key derived from them, so a
tick evaluated twice asks for the same runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ingest_assets.sources.object_store.reader import ObjectInfo, ObjectStore

if TYPE_CHECKING:
    from ingest_assets.spec.dataset import DatasetSpec

_DIGEST_BYTES = 8


@dataclass(frozen=True)
class LandingFeed:
    """What a landing sensor watches for one dataset.

    Attributes:
        location: The store's location, for messages.
        key_template: The keys of one period, read back into partitions.
        resource_keys: The resources the store is reached through.
        open_store: Opens the store from a run's (or a sensor's) resources.
    """

    location: str
    key_template: str
    resource_keys: set[str]
    open_store: Callable[[Any], ObjectStore]


@runtime_checkable
class Lands(Protocol):
    """A source kind whose data lands as objects, so that a landing sensor can watch it."""

    def landing(self, dataset: DatasetSpec, source: Any) -> LandingFeed:
        """The feed of a dataset of this kind."""
        ...


def version_digest(info: ObjectInfo) -> bytes:
    """A short digest identifying one version of an object: its key, ETag and write time.

    Every write is a new version, including a re-upload of identical content (a delivery
    repeated on purpose is a landing too).
    """
    text = f"{info.key}\0{info.etag}\0{info.modified:.3f}"
    return hashlib.blake2b(text.encode(), digest_size=_DIGEST_BYTES).digest()


def _pack(digests: set[bytes]) -> str:
    return base64.b64encode(b"".join(sorted(digests))).decode()


def _unpack(text: str) -> set[bytes]:
    raw = base64.b64decode(text)
    return {raw[i : i + _DIGEST_BYTES] for i in range(0, len(raw), _DIGEST_BYTES)}


@dataclass
class LandingCursor:
    """Where a landing scan stands; serialised as the sensor's cursor.

    Attributes:
        pass_started: When the current pass began (seconds since the epoch).
        after: The last key listed in the current pass ('' at the start of a pass).
        since: Objects modified before this were listed, settled, by an earlier pass.
        seen: Versions already requested (or waiting) that are modified at or after ``since``.
        next_seen: The same for the next pass, collected during this one.
        waiting: Versions whose partition does not exist yet, by partition key.
        passes: Passes completed.
    """

    pass_started: float
    after: str = ""
    since: float = -math.inf
    seen: set[bytes] = field(default_factory=set)
    next_seen: set[bytes] = field(default_factory=set)
    waiting: dict[str, set[bytes]] = field(default_factory=dict)
    passes: int = 0

    def dumps(self) -> str:
        """The cursor as a compact JSON string."""
        return json.dumps(
            {
                "v": 1,
                "pass_started": self.pass_started,
                "after": self.after,
                "since": None if math.isinf(self.since) else self.since,
                "seen": _pack(self.seen),
                "next_seen": _pack(self.next_seen),
                "waiting": {key: _pack(value) for key, value in self.waiting.items()},
                "passes": self.passes,
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str | None, *, now: float) -> LandingCursor:
        """Read a cursor written by :meth:`dumps`; without one, start a first pass at ``now``."""
        if not text:
            return cls(pass_started=now)
        raw = json.loads(text)
        return cls(
            pass_started=raw["pass_started"],
            after=raw["after"],
            since=-math.inf if raw["since"] is None else raw["since"],
            seen=_unpack(raw["seen"]),
            next_seen=_unpack(raw["next_seen"]),
            waiting={key: _unpack(value) for key, value in raw["waiting"].items()},
            passes=raw["passes"],
        )


@dataclass
class LandingRequest:
    """One run to request: a partition and the object versions that call for it.

    Attributes:
        partition: The partition key.
        versions: Digests of the new object versions (see :func:`version_digest`).
        keys: Keys of the new objects found in this tick (objects that waited for their
            partition are counted in ``versions`` only).
    """

    partition: str
    versions: set[bytes] = field(default_factory=set)
    keys: list[str] = field(default_factory=list)

    @property
    def run_key(self) -> str:
        """A key that is the same whenever the same versions request the same partition."""
        digest = hashlib.blake2b(b"".join(sorted(self.versions)), digest_size=8).hexdigest()
        return f"{self.partition}:{digest}"


@dataclass
class LandingScan:
    """What one tick found.

    Attributes:
        requests: Runs to request, one per partition.
        cursor: The cursor to store for the next tick.
        listed: Keys listed in this tick.
        unsettled: Objects left for later because they changed less than ``settle`` ago.
        ignored: Keys that match no partition (other files, or before the first partition).
        waiting: Object versions waiting for their partition to exist.
        pass_complete: Whether this tick reached the end of the listing.
        seconds: Time spent.
    """

    requests: list[LandingRequest]
    cursor: LandingCursor
    listed: int = 0
    unsettled: int = 0
    ignored: int = 0
    waiting: int = 0
    pass_complete: bool = False
    seconds: float = 0.0

    def describe(self) -> str:
        """A one-line summary for the tick's log."""
        state = "complete" if self.pass_complete else "continues next tick"
        number = self.cursor.passes + (0 if self.pass_complete else 1)
        return (
            f"listed {self.listed} keys (pass {number}, {state}) in "
            f"{self.seconds:.2f} s: {sum(len(r.versions) for r in self.requests)} new object "
            f"version(s) in {len(self.requests)} partition(s), {self.unsettled} not settled, "
            f"{self.waiting} waiting for their partition, {self.ignored} not matching"
        )


def scan_landing(
    store: ObjectStore,
    prefix: str,
    cursor: LandingCursor,
    *,
    place: Callable[[str], str | None],
    ready: Callable[[str], bool],
    now: float,
    settle: float,
    lookback: float,
    max_keys: int,
    max_seconds: float,
) -> LandingScan:
    """Run one tick of a landing scan.

    Args:
        store: The object store.
        prefix: The key prefix the dataset's objects share.
        cursor: The previous tick's cursor (it is updated in place and returned).
        place: Maps a key to its partition key, or None if it belongs to no partition.
        ready: Whether a partition exists (can be loaded) now.
        now: The current time, seconds since the epoch.
        settle: Seconds an object must be unchanged before it is picked up.
        lookback: Seconds of margin for objects visible only after their modification time.
        max_keys: Keys to list at most in this tick.
        max_seconds: Seconds to list at most in this tick.

    Returns:
        The requests and the new cursor.
    """
    started = time.monotonic()
    deadline = started + max_seconds
    tick = _Tick(cursor, place, ready, now, settle, cursor.pass_started - lookback - settle)
    for partition in [key for key in cursor.waiting if ready(key)]:
        tick.request(partition).versions |= cursor.waiting.pop(partition)
    last_key, complete = cursor.after, True
    for info in store.list(prefix, start_after=cursor.after):
        if tick.scan.listed >= max_keys or time.monotonic() > deadline:
            complete = False
            break
        tick.scan.listed += 1
        last_key = info.key
        tick.see(info)
    if complete:
        cursor.since = tick.next_since
        cursor.seen, cursor.next_seen = cursor.next_seen, set()
        cursor.after = ""
        cursor.pass_started = now
        cursor.passes += 1
    else:
        cursor.after = last_key
    scan = tick.scan
    scan.requests = sorted(tick.requests.values(), key=lambda found: found.partition)
    scan.waiting = sum(len(versions) for versions in cursor.waiting.values())
    scan.pass_complete = complete
    scan.seconds = time.monotonic() - started
    return scan


@dataclass
class _Tick:
    """What one tick has found so far."""

    cursor: LandingCursor
    place: Callable[[str], str | None]
    ready: Callable[[str], bool]
    now: float
    settle: float
    next_since: float
    requests: dict[str, LandingRequest] = field(default_factory=dict)
    scan: LandingScan = field(init=False)

    def __post_init__(self) -> None:
        self.scan = LandingScan(requests=[], cursor=self.cursor)

    def request(self, partition: str) -> LandingRequest:
        """The request of a partition, started on first use."""
        if partition not in self.requests:
            self.requests[partition] = LandingRequest(partition)
        return self.requests[partition]

    def see(self, info: ObjectInfo) -> None:
        """Take one listed object: new, already requested, unsettled, waiting or ignored."""
        cursor, scan = self.cursor, self.scan
        if info.modified < cursor.since:
            return
        digest = version_digest(info)
        if digest in cursor.seen:
            if info.modified >= self.next_since:
                cursor.next_seen.add(digest)
            return
        if self.settle and self.now - info.modified < self.settle:
            scan.unsettled += 1
            return
        partition = self.place(info.key)
        if partition is None:
            scan.ignored += 1
            return
        if self.ready(partition):
            found = self.request(partition)
            found.versions.add(digest)
            found.keys.append(info.key)
        else:
            cursor.waiting.setdefault(partition, set()).add(digest)
        if info.modified >= self.next_since:
            cursor.next_seen.add(digest)
