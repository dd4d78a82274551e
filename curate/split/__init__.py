"""Cleaned, leak-free, balanced splits (`curate split`) and their exports."""
