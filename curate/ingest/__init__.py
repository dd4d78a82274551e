"""Ingest: Kaggle fer2013 CSVs, image folders and path,label CSVs into a workspace."""
