"""The documented wire APIs of other chat systems, served over Palaver's own core.

Each dialect is a thin translation: client frames become calls to the same services the
native protocol uses (so persistence, ordering, authorization and rate limits are the
same), and every socket is a :class:`~palaver.gateway.client.Client` of the node's hub
(so fan-out, catch-up, presence and revocation are the same). Only the shape of frames
differs. See ``docs/compat.md``.
"""
