"""Errors the daemon raises to the control socket, which maps each to its error code."""

from __future__ import annotations


class UnknownPeer(LookupError):
    """An operator named a peer that is not configured (``not_found``)."""


class ReloadRefused(Exception):
    """A reload that changed nothing; ``code`` is the control socket's error code
    (``bad_config`` or ``restart_required``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
