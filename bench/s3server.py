"""moto's S3 server for the benchmarks, without two costs a real store does not have.

    python -m bench.s3server -H 127.0.0.1 -p PORT     (moto_server's own arguments)

* moto materialises the whole object for every GET and then slices out the range asked
  for.  A client fetching a 1 GiB object in 8 MiB ranges (boto3's ``download_file``)
  thus made moto copy 128 GiB, one fetching 16 MiB ranges 64 GiB: the big-object figure
  compared request counts, not clients, and took minutes.  Here a range costs the range.
* To route each request moto lists its own package directory (~200 ``isdir`` calls);
  here that list is read once.  That was a sixth of moto's time per small GET.

Everything else is moto as is: both clients of a benchmark meet the same server.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any

from moto import backends
from moto.s3.models import FakeKey
from moto.s3.responses import S3Response
from moto.server import main as moto_main


class _Range:
    """The bytes of a stored object, read only where sliced (what moto's range code does)."""

    def __init__(self, key: FakeKey) -> None:
        self.key = key

    def __len__(self) -> int:
        return int(self.key.size)

    def __getitem__(self, part: slice) -> bytes:
        lock: threading.Lock = self.key.lock
        with lock:
            buffer = self.key._value_buffer
            buffer.seek(part.start or 0)
            data: bytes = buffer.read(part.stop - (part.start or 0))
            return data


class _RangedKey:
    """A stored object whose ``value`` is a lazy :class:`_Range`; all else is the object's."""

    def __init__(self, key: FakeKey) -> None:
        self._key = key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._key, name)

    @property
    def value(self) -> _Range:
        return _Range(self._key)


def patch() -> bool:
    """Make ranged GETs lazy; False (moto left as is) if moto's internals changed."""
    if not all(hasattr(S3Response, n) for n in ("_get_key", "_handle_range_header")):
        return False
    get_key = S3Response._get_key

    def _get_key(self: S3Response, *args: Any, **kwargs: Any) -> Any:
        key, not_modified = get_key(self, *args, **kwargs)
        ranged = self.method == "GET" and self.headers.get("range")
        if ranged and hasattr(key, "_value_buffer") and hasattr(key, "lock"):
            return _RangedKey(key), not_modified
        return key, not_modified

    S3Response._get_key = _get_key  # type: ignore[method-assign]
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = functools.cache(lambda: modules)
    return True


if __name__ == "__main__":
    if not patch():
        print("bench.s3server: moto changed; serving ranges the slow way", file=sys.stderr)
    moto_main(sys.argv[1:])
