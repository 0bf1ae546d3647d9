"""The profile language and the matcher: terms, queries, scoring, and the Aho-Corasick engine.

Pure: profiles and papers in, ranked matches out. `naive.py` is the executable specification the
engine is tested and benchmarked against; nothing in production imports it.
"""
