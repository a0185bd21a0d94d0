"""Test doubles and builders shared by the suite (nothing in the product imports them).

- `factories`  small datasets and match tables built in the real layout, written through the real writer
- `sources`    ActivationSource doubles with planted, known correlations (the engine's exactness tests)
- `tree`       walking a Dash component tree to assert on component ids and props
"""
