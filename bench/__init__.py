"""
Benchmarks of airflow-provider-dify against the alternatives a DAG author would otherwise write.

Run ``make bench`` (``.venv/bin/python -m bench``) to measure every section and write ``docs/performance.md``;
``python -m bench --quick`` runs smaller sizes and prints the report instead, ``--only NAME`` runs one section.
Every figure is measured in the same run, on this machine, against the project's Dify emulator over
127.0.0.1: the benchmarks compare, they do not promise absolute speeds.
"""
