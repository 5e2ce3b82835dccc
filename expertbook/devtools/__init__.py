"""Development tools: never imported by the web app (``tests/test_structure.py`` checks it).

Only the ``flask`` commands of :mod:`expertbook.cli` import them, inside the command, and the tests.
"""
