"""``reprolab bench``: speed and memory measured on this machine, with the targets side by side.

``suite`` (the command and its JSON), ``timing`` (α moves, step cost, extraction) and ``course`` (the quickstart
and the notebooks in subprocesses). May import anything in the kit except the command line; nothing imports it.
"""
