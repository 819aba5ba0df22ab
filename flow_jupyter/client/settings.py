"""FlowClientSettings: every tunable of the Python client, as traitlets with help.

Set them per client (``FlowClient(retries=10)``), or for every client of a kernel in an IPython config file
(``c.FlowClientSettings.retries = 10`` in ``ipython_config.py``) — the client reads the running shell's config.
"""
from __future__ import annotations

from traitlets import Float, Int
from traitlets.config import Configurable

MiB = 1024 * 1024


class FlowClientSettings(Configurable):
    timeout = Float(30.0, config=True, help="Seconds to wait for the server to accept a connection or to answer "
                                            "(per socket operation, not for a whole transfer).")
    retries = Int(6, config=True, help="How often a request is retried after a connection error or a 502/503/504 "
                                       "before giving up; uploads and downloads also resume from where they were.")
    backoff = Float(0.5, config=True, help="First pause before a retry, in seconds; it doubles with every attempt.")
    max_backoff = Float(30.0, config=True, help="Longest pause between two retries, in seconds (a Retry-After "
                                                "header from the server is honoured up to this too).")
    chunk_size = Int(8 * MiB, config=True, help="Bytes per tus PATCH request of an upload. A dropped connection "
                                                "costs at most the unacknowledged part of one chunk.")
    poll_interval = Float(1.0, config=True, help="Seconds between status checks while waiting for an execution.")
