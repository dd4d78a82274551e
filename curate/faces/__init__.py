"""The face stage: find, align and crop the faces of photos before any crop-level step."""
