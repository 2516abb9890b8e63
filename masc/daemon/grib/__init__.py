"""The G-RIB hand-off (RFC 2909 §3, §5.1 d), §4.2, §12.4).

Once a prefix is allocated to the domain it is injected into the G-RIB of the inter-domain
routing protocol; when it expires, is released or withdrawn after a clash, it is removed.
The claim engine decides *what* the G-RIB holds (``GribInject`` / ``GribRemove`` events);
an exporter carries that out.  Exporters to the kernel and to FRR are a later layer; this
module defines the interface and the in-memory recorder the daemon and the tests use.
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol

from masc.protocol.wire.messages import Prefix

log = logging.getLogger("masc.grib")


class GribExporter(Protocol):
    """Receives every change of the domain's G-RIB set, in order, exactly once."""

    def inject(self, prefix: Prefix) -> None: ...

    def remove(self, prefix: Prefix) -> None: ...


class RecordingExporter:
    """Keeps the G-RIB set in memory, with the history of changes, and logs each change."""

    def __init__(self) -> None:
        self.prefixes: set[Prefix] = set()
        self.history: list[tuple[Literal["inject", "remove"], Prefix]] = []

    def inject(self, prefix: Prefix) -> None:
        self.prefixes.add(prefix)
        self.history.append(("inject", prefix))
        log.info("G-RIB inject %s", prefix, extra={"event": "grib_inject", "prefix": str(prefix)})

    def remove(self, prefix: Prefix) -> None:
        self.prefixes.discard(prefix)
        self.history.append(("remove", prefix))
        log.info("G-RIB remove %s", prefix, extra={"event": "grib_remove", "prefix": str(prefix)})
