"""Routing between the chat endpoint and the providers: retries, failover, timeouts and circuit breakers.

`router.Router` is the entry point; the package imports nothing eagerly, so providers can use `retry` helpers
without an import cycle.
"""
