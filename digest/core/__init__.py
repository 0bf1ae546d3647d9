"""The shared vocabulary every stage speaks: the data model, the errors, the statuses, and small
helpers with no business logic (addresses, tokens, atomic files, TOML locations, progress).

Nothing here imports anything of `digest` outside `digest.core` (checked by the layering contract
in pyproject.toml).
"""
