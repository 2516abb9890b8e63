"""The G-RIB hand-off (RFC 2909 §3, §5.1 d), §4.2, §12.4).

Once a prefix is allocated to the domain it is injected into the G-RIB of the inter-domain
routing protocol (MP-BGP, multicast SAFI, where BGMP roots its shared trees); when it
expires, is released or withdrawn after a clash, it is removed.  The claim engine decides
*what* the G-RIB holds (``GribInject`` / ``GribRemove`` events); :class:`GribTable` keeps
that set and the exporters of ``[grib]`` (``kernel``, ``frr``) carry it out, each in a task
of its own that reconciles its target with the set (docs/grib.md).
"""

from masc.daemon.grib.table import (
    GribError,
    GribExporter,
    GribTable,
    GribTarget,
    RecordingExporter,
    TargetStatus,
)

__all__ = [
    "GribError",
    "GribExporter",
    "GribTable",
    "GribTarget",
    "RecordingExporter",
    "TargetStatus",
]
