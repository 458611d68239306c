"""Leaf helpers every layer may use: files, hashing, the SQLite store, local models. Imports nothing above errors."""
