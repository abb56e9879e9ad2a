"""Helpers for DAG authors."""
