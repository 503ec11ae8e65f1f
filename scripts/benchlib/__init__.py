"""Shared pieces of Folio's benchmark scripts (scripts/bench_*.py).

- ``cer``: text normalisation, edit distance, CER and the order-independent bag-of-words error.
- ``groundtruth``: the corpus manifest, reference texts (.gt.txt, ALTO) and olmOCR-Bench unit tests.
- ``machine``: machine description, tool versions, installing Debian tools, Markdown tables.
"""
