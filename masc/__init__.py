"""masc: an implementation of the MASC protocol (RFC 2909) and its MALLOC companions."""

__version__ = "0.1.0"
