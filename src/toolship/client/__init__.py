"""The Python SDK: ``toolship.Client`` talks to a toolship server over HTTP (httpx).

With no server given (argument or ``TOOLSHIP_SERVER``) it starts — or reuses —
the local embedded server, exactly as the CLI does.  Argument names match the
CLI's options::

    from toolship import Client

    client = Client()
    task = client.run("localhost/toolship-busybox", ["sh", "-c", "echo hi"])
    print(task.state, task.logs())

The package reads top to bottom: ``base.py`` (the connection, errors as exceptions),
``handles.py`` (``Task``, ``Batch``), ``services.py`` (the services catalog's requests)
and ``core.py`` (``Client``: tasks and batches, with the services mixed in).
"""

from __future__ import annotations

from toolship.client.core import Client
from toolship.client.handles import Batch, Task
from toolship.client.services import ServiceArguments, ServiceBatchArguments

__all__ = ["Batch", "Client", "ServiceArguments", "ServiceBatchArguments", "Task"]
