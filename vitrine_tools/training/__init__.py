"""``vitrine_tools.training``: reproducible training and evaluation of the vision heads.

Owns reading the shared data set (CSV formats of ``../shared/data``), the held-out splits, view
and composite generation, the backbone-feature cache (outside the repository, default
``.vitrine/cache``), fitting the heads (``train``) and the evaluation suites (``evaluate``).
The models themselves live in ``workers.vision``; this package only feeds and measures them.

Never copies the data into the repository; reads it where it lies.
"""
