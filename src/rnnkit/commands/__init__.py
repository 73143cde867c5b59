"""Subcommands of the command line beyond ``train`` and ``sample``.

Each module here defines ``NAME`` (the subcommand), ``add_parser(subparsers,
formatter_class)`` (which adds and returns its parser) and ``run(args) -> int``
(the exit status). ``rnnkit.cli`` finds them by listing this package, so a new
command is a new file. They raise ValueError/TypeError/OSError for bad input;
the CLI turns those into one line and exit status 2.
"""
