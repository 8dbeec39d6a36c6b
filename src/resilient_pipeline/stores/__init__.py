"""Backends that keep primitives' state outside the object: in memory, or shared in Redis.

Each backend module imports its driver lazily: ``stores.redis`` needs the
``redis`` extra only when you use it.

* :mod:`resilient_pipeline.stores.memory`: circuit-breaker state in this process (the default).
* :mod:`resilient_pipeline.stores.redis`: circuit-breaker state shared across processes.
"""
