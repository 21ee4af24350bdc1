"""The web interface: server-rendered HTML pages under ``/ui/`` (no JavaScript, strict CSP).

``routes.dispatch`` is the only entry point the HTTP handler calls.
"""
