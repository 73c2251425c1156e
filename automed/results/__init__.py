"""Results: what a search leaves behind, read back for people and programs.

``leaderboard`` and ``describe`` (tables from the study database), ``report`` (one HTML page,
``svgplot``), ``artifact`` (the saved answer, no pickle), ``predict`` and ``model_card``.
"""
