"""Subcommands of the ``nehmap`` command, one module each.

Each subcommand's module defines ``add_arguments(parser)`` and ``run(args) -> int``;
heavy imports happen inside ``run`` so that ``nehmap --help`` stays fast. Two modules
are not subcommands but hold the options several share: :mod:`~nehmap.commands.options`
and :mod:`~nehmap.commands.dataset_options`. ``nehmap models`` lives with the models, in
:mod:`nehmap.models.command` (see the table in :mod:`nehmap.cli`).
"""
