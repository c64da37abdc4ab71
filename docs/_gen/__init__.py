"""Generators of the documentation pages that would drift if written by hand.

Each module renders Markdown from the code or from committed data; `pages.py` is the
mkdocs-gen-files script that writes them into the site at build time (nothing generated is
committed). `tests/unit/test_docs.py` imports these modules to check what they cover.
"""
