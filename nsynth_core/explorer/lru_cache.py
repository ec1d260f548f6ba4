"""A bounded, thread-safe map that forgets the least recently used entry first: the caches behind encoding and
decoding, the maps kept per WaveNet, the checkpoints' checks."""

import threading
from collections import OrderedDict


class LRUCache:
    def __init__(self, size: int):
        self.size = size
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
