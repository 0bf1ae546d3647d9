"""Relevance that learns (issue 17): rank a day's papers by similarity to the papers a reader
liked, and by their own model once they have given enough feedback. Pure decisions over
`core` data; the liked papers are resolved by `sources/arxiv_lookup.py`, stored by the store.

`likes` reads references, `engine` makes vectors, `ranker` ranks, `model` is the per-reader
logistic regression. docs/relevance.md explains the choices and the numbers behind them.
"""
