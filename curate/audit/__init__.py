"""Audit checks: blank/low-quality images, non-faces, misaligned crops, watermarks, cartoons, occlusions.

See :mod:`curate.audit.registry` for the checks and :mod:`curate.audit.api` for running them.
"""
