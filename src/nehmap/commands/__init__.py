"""Subcommands of the ``nehmap`` command, one module each.

Each module defines ``add_arguments(parser)`` and ``run(args) -> int``; heavy imports
happen inside ``run`` so that ``nehmap --help`` stays fast.
"""
