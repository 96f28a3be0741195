"""Experiments: a YAML config in, trained methods, result rows and an HTML report out (``reprolab run``).

``config`` (load and validate), ``run_data`` (the run's datasets), ``identity`` (row and checkpoint hashes),
``protocol`` (the fair comparison: choices on validation), ``runner`` (the orchestration), ``results`` (the rows on
disk), ``score_files``, ``report``, ``comparison``, ``paper_table``, ``naming`` and ``log``. May import evaluation,
methods and everything below them; never the course or bench packages.
"""
