"""The composition root: what wires the layers together and runs them.

``ledger`` (the domain), ``projections``, ``integrations`` and ``api`` each import only
the layers below them; this package sits on top of all four. ``cli`` is the ``ledger``
command, which opens the event store, the projection tables, the inbox and the server;
``demo`` is the sample history ``ledger demo`` records through the application service.
"""
