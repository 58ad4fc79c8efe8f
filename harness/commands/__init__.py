"""Subcommands of ``nn-parity``; each module exposes ``register(subparsers)``."""
