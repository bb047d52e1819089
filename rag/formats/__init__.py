"""Readers for document formats that are not plain text: each turns a file's bytes into posts' parts."""


class Unreadable(Exception):
    """The file cannot be read as its format; the message says why, for the ingest report."""
