"""Running the gateway as a service: health checks, systemd, metrics, the status page, structured logs.

One job per module (docs/operations.md is the operator's reference):

* ``operations`` — ``Operations``, entered around a running ``Gateway``: wires the rest;
* ``health`` — the liveness/health checks behind the watchdog and ``/healthz``;
* ``sdnotify`` — systemd's notify protocol; ``systemd`` — the unit and ``gonggi gateway install``;
* ``metrics`` — the gateway's own Prometheus registry; ``http_server`` — the aiohttp endpoint;
* ``status_page`` and ``history`` — the status page and its sparklines;
* ``logs`` — text or JSON log lines; ``commands`` — ``gonggi gateway install|node``;
* ``dead_letters`` — ``gonggi gateway dead-letters list|resend|drop``.

Submodules are imported where used, so the gateway does not load aiohttp until it serves HTTP.
"""

__all__: list[str] = []
