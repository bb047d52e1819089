"""Model files shipped inside the package (package data)."""
