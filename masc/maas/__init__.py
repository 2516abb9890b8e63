"""MAAS side of the daemon: the grant table (RFC 2908 Layer 2) and the MAAS socket client."""
