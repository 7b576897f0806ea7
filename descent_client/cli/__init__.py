"""The client commands of ``descent``: ``datasets``, ``jobs``, ``models`` and ``train``.

They speak to a running service over HTTP (``--url`` or ``DESCENT_URL``), with the common options
``--output table|json|csv``, ``--quiet`` and ``--api-key`` on every command.
"""

from __future__ import annotations

import click

from descent_client.cli.datasets import datasets
from descent_client.cli.jobs import jobs
from descent_client.cli.models import models
from descent_client.cli.train import train

COMMANDS: tuple[click.Command, ...] = (datasets, jobs, models, train)


def register(group: click.Group) -> None:
    """Add the client commands to the ``descent`` group."""
    for command in COMMANDS:
        group.add_command(command)
