"""qstash_dev: a local QStash emulator, Python 3 standard library only.

Started by tools/qstash-dev or `python3 -m qstash_dev` (with tools/ on
PYTHONPATH); README.md's emulator section lists what it covers.
"""
