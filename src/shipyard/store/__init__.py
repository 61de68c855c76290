"""Persistence: content-addressed blobs (``blobs``), artifact encoding (``serialize``) and
the metadata database (``meta``). Import the submodule you need; this package imports
nothing itself, so that ``import shipyard`` stays cheap."""
