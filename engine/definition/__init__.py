"""Workflow definitions: the YAML format, its typed model and its loader."""
