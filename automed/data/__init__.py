"""Data: files in, a checked :class:`~automed.data.dataset.Dataset` out.

``loaders`` turn a path into training data (and its locked test split); ``dataset`` is what the
rest of automed sees; ``preprocess``, ``tabular`` and ``tokens`` fit per-fold encodings
(scaling, vocabularies, one-hot levels) so nothing is learned from rows a fold must not see.
"""
