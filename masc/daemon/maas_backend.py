"""The MAAS API's view of the daemon: the grant table, run in the claim engine's task.

Every request that changes grants runs inside :class:`~masc.daemon.domain.DomainRunner`
(``run_in``), the one task that owns the engine, the grant table and the store, so a grant
is on disk before its answer or event leaves (RFC 2909 §13) and the engine hears the new
demand in the same turn (§17.1.2).  Grant events are turned into API events here and pushed
to the connections of the MAASs they concern.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from masc.api.maas import GrantInfo, MaasError, MaasEvent, RequestResult, UsageReport
from masc.config import MascConfig
from masc.daemon.domain import DomainRunner
from masc.daemon.maas import MaasConnection
from masc.maas.grants import (
    Deprecated,
    ExpiringSoon,
    Extended,
    Grant,
    Granted,
    GrantEvent,
    GrantTable,
    Revoked,
)

_EVENT_KIND: Final = {
    Granted: "granted",
    Extended: "extended",
    Deprecated: "deprecated",
    Revoked: "revoked",
    ExpiringSoon: "expiring",
}


def grant_info(grant: Grant) -> GrantInfo:
    return GrantInfo.build(grant.prefix, expires=grant.expires, active=grant.active)


def maas_event(event: GrantEvent) -> MaasEvent:
    reason = event.reason if isinstance(event, Revoked) else ""
    return MaasEvent(
        event=_EVENT_KIND[type(event)],  # type: ignore[arg-type]
        maas=event.grant.maas,
        grant=grant_info(event.grant),
        reason=reason,
    )


class DomainMaasBackend:
    """Implements :class:`masc.daemon.maas.MaasBackend` over one domain runner."""

    def __init__(self, config: MascConfig, domain: DomainRunner, grants: GrantTable) -> None:
        self.config = config
        self.domain = domain
        self.table = grants
        self.connections: dict[str, MaasConnection] = {}
        # One request can never be larger than the largest prefix a domain could hold.
        self.max_request = 1 << (32 if config.local.family.name == "IPV4" else 64)
        domain.on_grant_events = self.publish

    def identity(self) -> dict[str, Any]:
        local = self.config.local
        return {
            "domain_id": local.domain_id,
            "node_id": str(local.node_id),
            "address_family": local.address_family,
        }

    def publish(self, events: Sequence[GrantEvent]) -> None:
        """Called by the runner once the grants are on disk."""
        for event in events:
            connection = self.connections.get(event.grant.maas)
            if connection is not None:
                connection.push(maas_event(event))

    async def register(
        self, name: str, scopes: list[str], connection: MaasConnection
    ) -> list[GrantInfo]:
        self.connections[name] = connection
        try:
            await self.domain.register_maas(name, scopes)
        except BaseException:
            self.connections.pop(name, None)
            raise
        return self.grants(name)

    def unregister(self, name: str, connection: MaasConnection) -> None:
        if self.connections.get(name) is connection:
            del self.connections[name]
        self.table.unregister(name)  # its grants stay: a restarting MAAS keeps its space

    def grants(self, name: str) -> list[GrantInfo]:
        return [grant_info(g) for g in self.table.grants(name)]

    async def report_usage(self, name: str, usage: UsageReport) -> None:
        await self.domain.report_usage(
            name, in_use=usage.in_use, rate=usage.rate, by_prefix=usage.by_prefix
        )

    async def request(self, name: str, size: int) -> RequestResult:
        if size > self.max_request:
            raise MaasError(
                "bad_request", f"size {size} is more than the whole address family holds"
            )

        events = await self.domain.request_space(name, size)
        granted = [
            grant_info(e.grant) for e in events if isinstance(e, Granted) and e.grant.maas == name
        ]
        return RequestResult(granted=granted, outstanding=self.table.outstanding(name))
