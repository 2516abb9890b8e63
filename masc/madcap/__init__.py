"""MADCAP (RFC 2730) with the scope-nesting option of RFC 2907: codec, server and client.

The sans-IO half (constants, messages, codec, nesting, rules, retransmit, scopes, pool,
server) imports only the standard library, like masc/protocol; config, store and client do I/O.
"""
