"""What the test packages share, importable as ``support.<module>`` (pyproject.toml puts
``tests/`` on ``sys.path``):

- ``servers``: the servers scripts/services.sh starts (skip, or fail under CI=true, when one
  is missing; the run's closing summary lists those skips),
- ``redis_servers`` and ``blob_stores``: fixture plugins (``pytest_plugins`` in
  tests/conftest.py) for Redis and for the blob-store backends,
- ``fakes``: runs, tasks, logs and artifacts written straight through the stores,
- ``clock``: a clock the tests move by hand; ``virtual_time``: an event loop on virtual time,
- ``counting``: a cache backend that counts the reads reaching it,
- ``waiting``: ``wait_for(condition, what)``, polling with a deadline instead of sleeping,
- ``migration_data``: a run written into an old schema,
- ``flow_shapes``: the DAG shapes engine behaviour is tested across.
"""
