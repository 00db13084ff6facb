"""Subcommands registered by this module (placeholder until written)."""

from __future__ import annotations

import click


def register(root: click.Group) -> None:
    """Add this module's subcommands to the root command."""
